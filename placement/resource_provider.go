package placement

import "net/http"

func (s *Server) listResourceProviders(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) createResourceProvider(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) getResourceProvider(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) updateResourceProvider(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) deleteResourceProvider(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}
