package novaext

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/openstack"
)

// HeaderRequestID is the header Nova reads a global request id from and
// answers its own local id in (oslo.middleware's request_id; Go's
// canonical form of X-OpenStack-Request-ID).
const HeaderRequestID = "X-Openstack-Request-Id"

// headerComputeRequestID is nova-api's older name for its local id, sent
// beside X-Openstack-Request-Id with the same value.
const headerComputeRequestID = "X-Compute-Request-Id"

// requestIDFormat is oslo.middleware's ID_FORMAT: Nova ignores (silently)
// a client id of any other shape, upper-case hex included.
var requestIDFormat = regexp.MustCompile(`^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidRequestID says whether Nova would take id as a global request id.
func ValidRequestID(id string) bool { return requestIDFormat.MatchString(id) }

func newRequestID() string { return "req-" + uuid.NewString() }

// createPathRE matches the routes of a server create: /v2.1/servers and
// /v2/servers, with the legacy project segment or without, and
// os-volumes_boot (the old boot-from-volume alias of the same create).
var createPathRE = regexp.MustCompile(`^/(v2|v2\.1)/(?:([^/]+)/)?(servers|os-volumes_boot)/?$`)

// createRoute is where a create was sent: the API version segment and
// the project segment of a legacy URL ("" when the URL has none).
type createRoute struct {
	version string
	project string
}

func createPath(path string) (createRoute, bool) {
	m := createPathRE.FindStringSubmatch(path)
	if m == nil {
		return createRoute{}, false
	}
	// "/v2.1/servers/" would read "servers" as a project with no
	// collection after it; the regexp's collection group is mandatory, so
	// a project named like a collection can only be a real project.
	return createRoute{version: m[1], project: m[2]}, true
}

type createKey struct{}

// pendingCreate is a create whose intent was recorded and waits for
// nova-api's answer.
type pendingCreate struct {
	requestID string
}

func createOf(ctx context.Context) *pendingCreate {
	c, _ := ctx.Value(createKey{}).(*pendingCreate)
	return c
}

// prepareCreate reads the body of a create, settles its request id, looks
// the flavor up and records the intent; it returns the request to
// forward (the same bytes, the id header set, the pending intent in its
// context). Anything unreadable leaves the call to nova-api as it came:
// Nova answers a bad body itself.
func (p *Proxy) prepareCreate(r *http.Request, route createRoute) *http.Request {
	body, complete, err := p.peekBody(r)
	if err != nil || !complete {
		if err != nil {
			p.log.Debug("nova proxy: create body unread", "error", err)
		}
		return r
	}
	in, ok := parseCreate(body)
	if !ok {
		return r
	}
	id := r.Header.Get(HeaderRequestID)
	if !ValidRequestID(id) {
		// none, or one Nova would ignore: ours is what every service
		// downstream will carry (with keystone auth)
		id = newRequestID()
		r.Header.Set(HeaderRequestID, id)
	}
	in.RequestID = id
	in.UserID, in.ProjectID = identity(r, route)

	// each step has its own bound: a lookup that used all of its time
	// still leaves the intent (without the flavor) its own
	lookupCtx, cancel := context.WithTimeout(r.Context(), p.timeout)
	f, err := p.lookupFlavor(lookupCtx, r, route, id, in.FlavorRef)
	cancel()
	if err != nil {
		p.log.Info("nova proxy: flavor lookup failed, intent recorded without it",
			"request_id", id, "flavor", in.FlavorRef, "error", err)
	}
	in.Flavor = f
	storableIntent(in)
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	err = ledger.RecordIntent(ctx, p.db, in)
	if errors.Is(err, ledger.ErrExists) {
		p.log.Info("nova proxy: request id used again, its intent replaced", "request_id", id)
		err = ledger.ReplaceIntent(ctx, p.db, in)
	}
	if err != nil {
		p.log.Warn("nova proxy: intent not recorded, forwarding anyway", "request_id", id, "error", err)
		return r
	}
	p.log.Debug("nova proxy: intent recorded", "request_id", id, "flavor", in.FlavorRef, "name", in.ServerName)
	return r.WithContext(context.WithValue(r.Context(), createKey{}, &pendingCreate{requestID: id}))
}

// peekBody reads up to maxBody bytes of the body and puts them back in
// front of the rest, so the forwarded body is the client's byte for
// byte. complete is false when the body is larger (it is forwarded
// unread).
func (p *Proxy) peekBody(r *http.Request) (body []byte, complete bool, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, p.maxBody+1))
	orig := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), orig), orig}
	if err != nil {
		return nil, false, err
	}
	return buf, int64(len(buf)) <= p.maxBody, nil
}

// parseCreate takes what the intent needs from a create body, leniently:
// a field of an unexpected type is left out rather than failing the
// rest. ok is false when there is no server object with a flavorRef,
// which Nova refuses anyway.
func parseCreate(body []byte) (*ledger.Intent, bool) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, false
	}
	var server map[string]json.RawMessage
	if err := json.Unmarshal(top["server"], &server); err != nil || server == nil {
		return nil, false
	}
	in := &ledger.Intent{
		FlavorRef:  scalar(server["flavorRef"]),
		ImageRef:   scalar(server["imageRef"]),
		ServerName: scalar(server["name"]),
		MinCount:   count(server["min_count"]),
		MaxCount:   count(server["max_count"]),
	}
	if in.FlavorRef == "" {
		return nil, false
	}
	if in.ImageRef == "" {
		in.ImageRef = bootImage(server["block_device_mapping_v2"])
	}
	for _, k := range []string{"os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"} {
		var h map[string]any
		if json.Unmarshal(top[k], &h) == nil && h != nil {
			in.SchedulerHints = h
			break
		}
	}
	return in, true
}

// scalar is a JSON string's value, or a number's text (Nova takes
// flavorRef as either); "" otherwise.
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// count is min_count/max_count, a positive integer or its digits as a
// string in Nova's schema; 0 when absent or anything else (the intent's
// default then applies, and Nova judges the value).
func count(raw json.RawMessage) int {
	n, err := strconv.Atoi(scalar(raw))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// bootImage is the image of a boot-from-volume create: the boot_index 0
// block device whose source is an image.
func bootImage(raw json.RawMessage) string {
	var bdms []map[string]json.RawMessage
	if json.Unmarshal(raw, &bdms) != nil {
		return ""
	}
	for _, b := range bdms {
		if scalar(b["source_type"]) == "image" && scalar(b["boot_index"]) == "0" {
			return scalar(b["uuid"])
		}
	}
	return ""
}

// identity is the user and project of a create. With Keystone they are
// the validated token's (ServeHTTP put its credentials in the context).
// Without, the proxy tells what it can without validating the token: the
// "user:project" form of a noauth2 token (what nova-api's noauth2
// middleware trusts) and the project of a legacy URL; "" otherwise.
func identity(r *http.Request, route createRoute) (user, project string) {
	if c := openstack.CredentialsFrom(r.Context()); c != nil {
		return c.UserID, c.ProjectID
	}
	if u, p, ok := strings.Cut(r.Header.Get("X-Auth-Token"), ":"); ok {
		user, project = u, p
	}
	if route.project != "" {
		project = route.project
	}
	return user, project
}

// answerCreate files nova-api's ids of the create as aliases of the
// intent, then its status as the answer.
func (p *Proxy) answerCreate(ctx context.Context, c *pendingCreate, resp *http.Response) {
	var aliases []string
	for _, h := range []string{HeaderRequestID, headerComputeRequestID} {
		for _, v := range resp.Header.Values(h) {
			if v = strings.TrimSpace(v); v != "" {
				aliases = append(aliases, v)
			}
		}
	}
	p.finishCreate(ctx, c, resp.StatusCode, aliases)
}

// finishCreate writes the aliases before the answer: the scheduler stops
// waiting for an id once nothing is in flight, so it must find the alias
// by then (ledger.AwaitIntent reads both in one snapshot). The writes
// outlive a client that hangs up: nova-api has the request regardless.
func (p *Proxy) finishCreate(ctx context.Context, c *pendingCreate, status int, aliases []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
	defer cancel()
	slices.Sort(aliases)
	aliases = slices.Compact(aliases)
	for _, a := range aliases {
		if err := ledger.AliasIntent(ctx, p.db, c.requestID, a); err != nil {
			p.log.Warn("nova proxy: alias not recorded", "request_id", c.requestID, "alias", a, "error", err)
		}
	}
	if err := ledger.AnswerIntent(ctx, p.db, c.requestID, status); err != nil {
		p.log.Warn("nova proxy: answer not recorded", "request_id", c.requestID, "status", status, "error", err)
		return
	}
	p.log.Info("nova proxy: server create", "request_id", c.requestID, "nova_request_ids", aliases, "status", status)
}

// storableIntent makes an intent's strings storable: PostgreSQL takes no
// NUL character in text or jsonb, nor invalid UTF-8 in text (a legacy
// URL's project). The intent records what the client asked for: a
// recorded intent with U+FFFD where the NUL was still releases a waiting
// scheduler when nova-api answers (most likely refusing the body), where
// a failed insert would leave the create without one. The body goes to
// nova-api byte for byte either way.
func storableIntent(in *ledger.Intent) {
	for _, s := range []*string{&in.ProjectID, &in.UserID, &in.FlavorRef, &in.ImageRef, &in.ServerName} {
		*s = storableText(*s)
	}
	if in.SchedulerHints != nil {
		in.SchedulerHints = storableJSON(in.SchedulerHints).(map[string]any)
	}
	if f := in.Flavor; f != nil {
		f.ID, f.Name = storableText(f.ID), storableText(f.Name)
		if f.ExtraSpecs != nil {
			specs := make(map[string]string, len(f.ExtraSpecs))
			for k, v := range f.ExtraSpecs {
				specs[storableText(k)] = storableText(v)
			}
			f.ExtraSpecs = specs
		}
	}
}

func storableText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// storableJSON is a decoded JSON value with storableText applied to every
// key and string.
func storableJSON(v any) any {
	switch v := v.(type) {
	case string:
		return storableText(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[storableText(k)] = storableJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = storableJSON(e)
		}
		return out
	}
	return v
}
