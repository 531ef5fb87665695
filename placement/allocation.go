package placement

import "net/http"

func (s *Server) setAllocations(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) listConsumerAllocations(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) setConsumerAllocations(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) deleteConsumerAllocations(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}

func (s *Server) listProviderAllocations(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}
