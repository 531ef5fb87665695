package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/pg"
)

// NULError is the ErrInvalid of a request string PostgreSQL cannot store:
// text and jsonb take no NUL character (jsonb not even as the escape
// \u0000, nor a lone surrogate escape), and text no invalid UTF-8. Refusing
// it here, before anything is written, makes it every API's 400 rather
// than a failed insert. Field names the string in the coordinator's terms
// ("name", "container.environment", "spec.workdir"): an API that names
// fields its own way maps it or checks first.
type NULError struct {
	Field string
	// Reason is what is wrong: "contains a NUL character", ...
	Reason string
}

func (e *NULError) Error() string {
	return fmt.Sprintf("%s: %s %s", ErrInvalid, e.Field, e.Reason)
}

// Unwrap makes a NULError an ErrInvalid.
func (e *NULError) Unwrap() error { return ErrInvalid }

// NULError reasons.
const (
	ReasonNUL       = pg.RefusalNUL
	ReasonUTF8      = "is not valid UTF-8"
	ReasonSurrogate = pg.RefusalSurrogate
)

// badString says why PostgreSQL would refuse s as text ("" when it takes it).
func badString(s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return ReasonNUL
	case !utf8.ValidString(s):
		return ReasonUTF8
	}
	return ""
}

// strChecker collects the first unstorable string of a request.
type strChecker struct{ err *NULError }

func (c *strChecker) str(field, s string) {
	if c.err != nil {
		return
	}
	if r := badString(s); r != "" {
		c.err = &NULError{Field: field, Reason: r}
	}
}

func (c *strChecker) strs(field string, ss []string) {
	for _, s := range ss {
		c.str(field, s)
	}
}

// keyed checks a map's keys and values; a bad key is named by the map.
func (c *strChecker) keyed(field string, m map[string]string) {
	for k, v := range m {
		c.str(field, k)
		c.str(field+"."+k, v)
	}
}

func (c *strChecker) result() error {
	if c.err == nil {
		return nil
	}
	return c.err
}

// CheckCreateStrings refuses a create holding a string PostgreSQL cannot
// store, anywhere: the named fields first, then the container, then the
// API's spec (which repeats much of the container in the API's words).
// Create runs it; an API creating several workloads per request runs it
// on all of them first, so that a refusal leaves none created.
func CheckCreateStrings(req *CreateRequest) error {
	var c strChecker
	c.str("id", req.ID)
	c.str("name", req.Name)
	c.str("project_id", req.ProjectID)
	c.str("user_id", req.UserID)
	c.str("request_id", req.RequestID)
	c.strs("required_traits", req.RequiredTraits)
	c.strs("forbidden_traits", req.ForbiddenTraits)
	for _, m := range req.MemberOf {
		c.strs("member_of", m)
	}
	c.str("availability_zone", req.AvailabilityZone)
	if req.Group != nil {
		c.str("group.id", req.Group.ID)
		c.str("group.policy", string(req.Group.Policy))
		c.strs("group.hosts", req.Group.Hosts)
	}
	c.str("host", req.Host)
	if req.Container != nil {
		checkContainerStrings(&c, req.Container)
	}
	if err := c.result(); err != nil {
		return err
	}
	if len(req.Spec) > 0 {
		return checkJSONStrings("spec", req.Spec)
	}
	return nil
}

// checkContainerStrings names a container's fields as its JSON does
// (agentproto), which is also how the container APIs spell most of them.
func checkContainerStrings(c *strChecker, ct *agentproto.Container) {
	c.str("container.workload_id", ct.WorkloadID)
	c.str("container.name", ct.Name)
	c.str("container.project_id", ct.ProjectID)
	c.str("container.image", ct.Image)
	c.strs("container.command", ct.Command)
	c.strs("container.entrypoint", ct.Entrypoint)
	c.keyed("container.environment", ct.Env)
	c.keyed("container.labels", ct.Labels)
	c.str("container.workdir", ct.Workdir)
	c.str("container.hostname", ct.Hostname)
	c.str("container.restart_policy.name", ct.RestartPolicy.Name)
	c.str("container.cpu_policy", ct.CPUPolicy)
	c.str("container.cpuset_cpus", ct.CpusetCpus)
	c.str("container.cpuset_mems", ct.CpusetMems)
}

// checkJSONStrings finds a key or string value of a JSON document that
// jsonb refuses: a NUL character (as the escape \u0000) or a lone
// surrogate escape, which Go's decoder would silently turn into U+FFFD.
// The document is valid JSON (checked before).
func checkJSONStrings(field string, doc []byte) error {
	if bytes.IndexByte(doc, '\\') < 0 {
		return nil // no escape: nothing jsonb refuses that valid JSON can hold
	}
	if r := pg.JSONBRefusal(doc); r == "" {
		return nil
	} else if r == ReasonSurrogate {
		return &NULError{Field: field, Reason: r}
	}
	// A NUL: find where, for the message.
	path, err := nulPath(doc)
	if err != nil || path == "" {
		return &NULError{Field: field, Reason: ReasonNUL}
	}
	return &NULError{Field: field + "." + path, Reason: ReasonNUL}
}

// nulPath is the dotted path of the first key or string value holding a
// NUL ("" for the top-level value itself).
func nulPath(doc []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type frame struct {
		object bool
		key    string
		index  int
		inKey  bool // an object's next string token is a key
	}
	var stack []*frame
	// path names the position within the first n containers
	path := func(n int) string {
		var parts []string
		for _, f := range stack[:n] {
			if f.object {
				parts = append(parts, f.key)
			} else {
				parts = append(parts, strconv.Itoa(f.index))
			}
		}
		return strings.Join(parts, ".")
	}
	// after a value inside a container, advance its position
	advance := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.object {
			top.inKey = true
		} else {
			top.index++
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{object: true, inKey: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				advance()
			}
		case string:
			if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].inKey {
				top := stack[len(stack)-1]
				if strings.IndexByte(t, 0) >= 0 {
					return path(len(stack) - 1), nil // named by its object
				}
				top.key, top.inKey = t, false
				continue
			}
			if strings.IndexByte(t, 0) >= 0 {
				return path(len(stack)), nil
			}
			advance()
		default:
			advance()
		}
	}
}

// storableText is s as PostgreSQL text can hold it: NUL characters and
// invalid UTF-8 become U+FFFD.
func storableText(s string) string {
	if badString(s) == "" {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
