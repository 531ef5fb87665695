package placement

import (
	"fmt"
	"net/http"

	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/store"
)

// Profiles the conformance runner switches between (see
// shared/conformance/placement/README.md).
var testProfiles = map[string]Settings{
	"default":     {Policy: policy.New(policy.Legacy)},
	"secure_rbac": {Policy: policy.New(policy.SecureRBAC)},
	"open_policy": {Policy: policy.New(policy.Open)},
	"cors": {Policy: policy.New(policy.Legacy), CORS: &CORS{
		AllowedOrigins: []string{"http://valid.example.com"},
		AllowHeaders:   []string{"openstack-api-version"},
	}},
}

// testReset empties the database and switches to a profile. It is only
// routed when Config.TestReset is set (UNISCHED_TEST_RESET=1).
func (s *Server) testReset(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Profile string `json:"profile"`
	}
	if err := s.readJSON(r, nil, &body); err != nil {
		return err
	}
	if body.Profile == "" {
		body.Profile = "default"
	}
	settings, ok := testProfiles[body.Profile]
	if !ok {
		return badRequest("unknown profile %q", body.Profile)
	}
	if err := store.Reset(r.Context(), s.db); err != nil {
		return fmt.Errorf("resetting database: %w", err)
	}
	s.candidates.reset()
	s.settings.Store(&settings)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
