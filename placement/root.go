package placement

import (
	"net/http"
	"time"
)

// home is the version discovery document clients negotiate against.
func (s *Server) home(w http.ResponseWriter, r *http.Request) error {
	setLastModified(w, r, time.Now())
	writeJSON(w, http.StatusOK, map[string]any{
		"versions": []map[string]any{{
			"id":          "v1.0",
			"max_version": MaxVersion.String(),
			"min_version": MinVersion.String(),
			"status":      "CURRENT",
			"links":       []map[string]string{{"rel": "self", "href": ""}},
		}},
	})
	return nil
}
