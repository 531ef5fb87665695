package qs

import (
	"regexp"
	"strings"
)

// Group is one request group of GET /allocation_candidates: the unsuffixed
// group (Suffix "") may be satisfied by several providers of one tree plus
// sharing providers; a suffixed group by exactly one provider.
type Group struct {
	Suffix    string
	Resources []Amount
	Traits    Traits
	MemberOf  MemberOf
	InTree    string // canonical uuid, "" when absent
}

// SameProvider reports whether the group must be satisfied by one provider.
func (g *Group) SameProvider() bool { return g.Suffix != "" }

// CandidatesQuery is a validated GET /allocation_candidates query.
type CandidatesQuery struct {
	// Groups in the order their first key appears in the query string.
	Groups        []*Group
	Limit         int    // 0: no limit
	GroupPolicy   string // "" when absent; only "isolate" restricts anything
	RootRequired  []string
	RootForbidden []string
	// SameSubtrees holds one set of suffixes per same_subtree value.
	SameSubtrees [][]string
}

// Group returns the group with the given suffix, or nil.
func (q *CandidatesQuery) Group(suffix string) *Group {
	for _, g := range q.Groups {
		if g.Suffix == suffix {
			return g
		}
	}
	return nil
}

var (
	groupKey     = regexp.MustCompile(`^(resources|required|member_of|in_tree)([1-9][0-9]*)?$`)
	groupKey1_33 = regexp.MustCompile(`^(resources|required|member_of|in_tree)([a-zA-Z0-9_-]{1,64})?$`)
)

// CandidatesSchema returns the query-string schema of GET
// /allocation_candidates at microversion 1.minor (minor >= 10).
func CandidatesSchema(minor int) *Schema {
	switch {
	case minor >= 36:
		return candidatesSchema1_36
	case minor >= 35:
		return candidatesSchema1_35
	case minor >= 33:
		return candidatesSchema1_33
	case minor >= 31:
		return candidatesSchema1_31
	case minor >= 25:
		return candidatesSchema1_25
	case minor >= 21:
		return candidatesSchema1_21
	case minor >= 17:
		return candidatesSchema1_17
	case minor >= 16:
		return candidatesSchema1_16
	default:
		return candidatesSchema1_10
	}
}

// ParseCandidates validates and parses the query of GET
// /allocation_candidates at microversion 1.minor, checking in upstream's
// order so that the first error reported is the same.
func ParseCandidates(params Params, minor int) (*CandidatesQuery, *Error) {
	if err := CandidatesSchema(minor).Validate(params); err != nil {
		return nil, err
	}
	q := &CandidatesQuery{}
	if err := q.parseRequestWide(params); err != nil {
		return nil, err
	}
	if err := q.parseGroups(params, minor); err != nil {
		return nil, err
	}
	if q.GroupPolicy == "" {
		n := 0
		for _, g := range q.Groups {
			if g.SameProvider() {
				n++
			}
		}
		if n > 1 {
			return nil, badRequest(`The "group_policy" parameter is required when specifying more than one "resources{N}" parameter.`)
		}
	}
	return q, nil
}

func (q *CandidatesQuery) parseRequestWide(params Params) *Error {
	// The schema checked the last limit; upstream uses the first.
	if v, ok := params.First("limit"); ok {
		n, _, ok := pyInt(v)
		if !ok || n < 1 {
			return badRequest("Invalid query string parameters: " + pyRepr(v) + " does not match '^[1-9][0-9]*$'")
		}
		if n > int64(int(^uint(0)>>1)) {
			n = int64(int(^uint(0) >> 1))
		}
		q.Limit = int(n)
	}
	if v, ok := params.First("group_policy"); ok {
		// The schema checked the last value; anything but "isolate" in the
		// first one behaves as "none", as upstream.
		q.GroupPolicy = v
	}
	if rr := params.All("root_required"); len(rr) > 0 {
		if len(rr) > 1 {
			return badRequestCode("Query parameter 'root_required' may be specified only once.", CodeDuplicateKey)
		}
		req, forb, err := RootRequired(rr[0])
		if err != nil {
			return err
		}
		q.RootRequired, q.RootForbidden = req, forb
	}
	for _, v := range params.All("same_subtree") {
		var set []string
		for _, s := range strings.Split(v, ",") {
			s = pyStrip(s)
			if s == "" {
				return badRequestCode("Empty string (unsuffixed group) can not be specified in `same_subtree` ", CodeBadValue)
			}
			if !contains(set, s) {
				set = append(set, s)
			}
		}
		q.SameSubtrees = append(q.SameSubtrees, set)
	}
	return nil
}

func (q *CandidatesQuery) parseGroups(params Params, minor int) *Error {
	pattern := groupKey
	if minor >= 33 {
		pattern = groupKey1_33
	}
	for _, kv := range params {
		m := pattern.FindStringSubmatch(kv.Key)
		if m == nil {
			continue
		}
		prefix, suffix := m[1], m[2]
		g := q.Group(suffix)
		if g == nil {
			g = &Group{Suffix: suffix}
			q.Groups = append(q.Groups, g)
		}
		var err *Error
		switch prefix {
		case "resources":
			g.Resources, err = Resources(kv.Value)
		case "required":
			g.Traits, err = TraitsParams(params.All(kv.Key), minor)
		case "member_of":
			g.MemberOf, err = MemberOfParams(params.All(kv.Key), suffix, minor)
		case "in_tree":
			g.InTree, err = InTree(kv.Value)
		}
		if err != nil {
			return err
		}
	}

	if minor >= 36 {
		var resourceless, subtree []string
		for _, g := range q.Groups {
			if len(g.Resources) == 0 {
				resourceless = append(resourceless, g.Suffix)
			}
		}
		for _, set := range q.SameSubtrees {
			for _, s := range set {
				if !contains(subtree, s) {
					subtree = append(subtree, s)
				}
			}
		}
		if len(resourceless) == len(q.Groups) {
			return badRequestCode("There must be at least one resources or resources[$S] parameter.", CodeMissingValue)
		}
		var bad []string
		for _, s := range resourceless {
			if !contains(subtree, s) {
				bad = append(bad, s)
			}
		}
		if len(bad) > 0 {
			return badRequestCode("Resourceless suffixed group request should be specified in `same_subtree` "+
				"query param: bad group(s) - "+pyReprList(bad)+".", CodeBadValue)
		}
		bad = nil
		var all []string
		for _, g := range q.Groups {
			all = append(all, g.Suffix)
		}
		for _, s := range subtree {
			if !contains(all, s) {
				bad = append(bad, s)
			}
		}
		if len(bad) > 0 {
			return badRequestCode("Real suffixes should be specified in `same_subtree`: "+pyReprList(bad)+
				" not found in "+pyReprList(all)+".", CodeBadValue)
		}
	} else if err := q.checkOrphans(); err != nil {
		return err
	}

	if minor >= 22 {
		var conflicts []string
		for _, g := range q.Groups {
			for _, any := range g.Traits.Required {
				allForbidden := true
				for _, t := range any {
					if !contains(g.Traits.Forbidden, t) {
						allForbidden = false
					}
				}
				if allForbidden {
					conflicts = append(conflicts, "required"+g.Suffix+": ("+strings.Join(any, ", ")+")")
				}
			}
		}
		if len(conflicts) > 0 {
			sortStrings(conflicts)
			return badRequest("Conflicting required and forbidden traits found in the following traits keys: " +
				strings.Join(conflicts, ", "))
		}
	}
	return nil
}

func (q *CandidatesQuery) checkOrphans() *Error {
	var orphans []string
	for _, g := range q.Groups {
		if len(g.Traits.Required) > 0 && len(g.Resources) == 0 {
			orphans = append(orphans, "required"+g.Suffix)
		}
	}
	if len(orphans) > 0 {
		return badRequest("All traits parameters must be associated with resources.  " +
			"Found the following orphaned traits keys: " + strings.Join(orphans, ", "))
	}
	for _, g := range q.Groups {
		if len(g.Resources) == 0 && (len(g.MemberOf.Required) > 0 || len(g.MemberOf.Forbidden) > 0) {
			orphans = append(orphans, "member_of"+g.Suffix)
		}
	}
	if len(orphans) > 0 {
		return badRequest("All member_of parameters must be associated with resources. " +
			"Found the following orphaned member_of keys: " + strings.Join(orphans, ", "))
	}
	for _, g := range q.Groups {
		if len(g.Resources) == 0 {
			return badRequest("All request groups must specify resources.")
		}
	}
	if len(q.Groups) == 0 {
		return badRequest("At least one request group (`resources` or `resources{$S}`) is required.")
	}
	return nil
}
