package placement

import "net/http"

func (s *Server) listAllocationCandidates(w http.ResponseWriter, r *http.Request) error {
	return errNotImplemented
}
