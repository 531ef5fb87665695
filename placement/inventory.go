package placement

import "net/http"

func (s *Server) getInventories(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) createInventory(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) setInventories(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) deleteInventories(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) getInventory(w http.ResponseWriter, r *http.Request) error { return errNotImplemented }

func (s *Server) updateInventory(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) deleteInventory(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}
