package placement

import "net/http"

func (s *Server) listTraits(w http.ResponseWriter, r *http.Request) error { return errNotImplemented }

func (s *Server) getTrait(w http.ResponseWriter, r *http.Request) error { return errNotImplemented }

func (s *Server) putTrait(w http.ResponseWriter, r *http.Request) error { return errNotImplemented }

func (s *Server) deleteTrait(w http.ResponseWriter, r *http.Request) error { return errNotImplemented }

func (s *Server) listProviderTraits(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) setProviderTraits(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) deleteProviderTraits(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}
