package placement

import "net/http"

func (s *Server) listResourceClasses(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) createResourceClass(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) getResourceClass(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) updateResourceClass(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) deleteResourceClass(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}
