package placement

import "net/http"

func (s *Server) getAggregates(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) setAggregates(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}
