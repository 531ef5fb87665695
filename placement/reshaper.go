package placement

import "net/http"

func (s *Server) reshape(w http.ResponseWriter, r *http.Request) error { return errNotImplemented }
