package placement

import "net/http"

func (s *Server) listProviderUsages(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) listUsages(w http.ResponseWriter, r *http.Request) error { return errNotImplemented }
