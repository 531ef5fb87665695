package jsonschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
)

// Values inside this package follow Python's json.loads model, because the
// error text prints them the way Python would:
//
//	nil, bool, string   None, True/False, str
//	int64, *big.Int     int (big only when it does not fit in int64)
//	float64             float
//	[]any               list
//	*Object             dict, remembering insertion order

// Object is a JSON object that keeps its keys in document order, as a
// Python dict does. The order shows in error messages ("{'a': 1, 'b': 2}
// does not have enough properties") and decides which of several errors
// is reported first, so it must survive decoding.
type Object struct {
	keys []string
	vals map[string]any
}

// NewObject returns an empty Object.
func NewObject() *Object { return &Object{vals: map[string]any{}} }

// Set stores v under k. A repeated key keeps its first position and takes
// the new value, as json.loads does.
func (o *Object) Set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// Get returns the value stored under k.
func (o *Object) Get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// Keys returns the keys in insertion order; the slice must not be modified.
func (o *Object) Keys() []string { return o.keys }

// Len is the number of keys.
func (o *Object) Len() int { return len(o.keys) }

// Decode parses one JSON document into the value model that Validate
// understands best: objects become *Object (key order kept), numbers
// become int64, *big.Int or float64 exactly as Python's json.loads would
// type them.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("extra data after the JSON value")
		}
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := NewObject()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is %v, not a string", kt)
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				obj.Set(k, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return obj, nil
		case '[':
			list := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return list, nil
		}
		return nil, fmt.Errorf("unexpected delimiter %v", t)
	case json.Number:
		return parseNumber(string(t))
	default:
		return t, nil // nil, bool, string
	}
}

// parseNumber types a JSON number literal as json.loads does: a fraction or
// exponent makes a float (overflowing to inf), anything else an int of any
// size.
func parseNumber(s string) (any, error) {
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("parsing number %q: %w", s, err)
		}
		return f, nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("parsing number %q", s)
	}
	return b, nil
}

// normalize converts a caller's value (typically from encoding/json with
// UseNumber) into the internal model. Plain maps have no order, so their
// keys are sorted to keep results deterministic.
func normalize(v any) (any, error) {
	switch t := v.(type) {
	case nil, bool, string, int64, float64:
		return t, nil
	case *big.Int:
		if t == nil {
			return nil, nil
		}
		if t.IsInt64() {
			return t.Int64(), nil
		}
		return t, nil
	case json.Number:
		return parseNumber(string(t))
	case int:
		return int64(t), nil
	case int8:
		return int64(t), nil
	case int16:
		return int64(t), nil
	case int32:
		return int64(t), nil
	case uint:
		return normUint(uint64(t)), nil
	case uint8:
		return int64(t), nil
	case uint16:
		return int64(t), nil
	case uint32:
		return int64(t), nil
	case uint64:
		return normUint(t), nil
	case float32:
		return float64(t), nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case []string:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = e
		}
		return out, nil
	case *Object:
		if t == nil {
			return nil, nil
		}
		out := NewObject()
		for _, k := range t.keys {
			n, err := normalize(t.vals[k])
			if err != nil {
				return nil, err
			}
			out.Set(k, n)
		}
		return out, nil
	case map[string]any:
		out := NewObject()
		for _, k := range sortedKeys(t) {
			n, err := normalize(t[k])
			if err != nil {
				return nil, err
			}
			out.Set(k, n)
		}
		return out, nil
	case map[string]string:
		out := NewObject()
		for _, k := range sortedKeys(t) {
			out.Set(k, t[k])
		}
		return out, nil
	}
	return nil, fmt.Errorf("jsonschema: unsupported instance type %T", v)
}

func normUint(u uint64) any {
	if u <= math.MaxInt64 {
		return int64(u)
	}
	return new(big.Int).SetUint64(u)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// isNumber is Python's "number" type: int or float, but not bool.
func isNumber(v any) bool {
	switch v.(type) {
	case int64, *big.Int, float64:
		return true
	}
	return false
}

// isType applies the Draft 2020-12 type checker of python-jsonschema, in
// which a float with an integral value counts as an "integer".
func isType(v any, typ string) bool {
	switch typ {
	case "array":
		_, ok := v.([]any)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		switch t := v.(type) {
		case int64, *big.Int:
			return true
		case float64:
			return !math.IsInf(t, 0) && !math.IsNaN(t) && t == math.Trunc(t)
		}
		return false
	case "null":
		return v == nil
	case "number":
		return isNumber(v)
	case "object":
		_, ok := v.(*Object)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	}
	return false
}

func toBig(v any) *big.Int {
	switch t := v.(type) {
	case int64:
		return big.NewInt(t)
	case *big.Int:
		return t
	}
	return nil
}

// numCmp compares two numbers exactly, as Python compares int and float.
// ok is false when the values are unordered (a NaN is involved).
func numCmp(a, b any) (c int, ok bool) {
	fa, aFloat := a.(float64)
	fb, bFloat := b.(float64)
	switch {
	case !aFloat && !bFloat:
		if ia, ok := a.(int64); ok {
			if ib, ok := b.(int64); ok {
				return cmpOrdered(ia, ib), true
			}
		}
		return toBig(a).Cmp(toBig(b)), true
	case aFloat && bFloat:
		if math.IsNaN(fa) || math.IsNaN(fb) {
			return 0, false
		}
		return cmpOrdered(fa, fb), true
	case aFloat:
		c, ok := cmpFloatInt(fa, toBig(b))
		return c, ok
	default:
		c, ok := cmpFloatInt(fb, toBig(a))
		return -c, ok
	}
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpFloatInt(f float64, i *big.Int) (int, bool) {
	switch {
	case math.IsNaN(f):
		return 0, false
	case math.IsInf(f, 1):
		return 1, true
	case math.IsInf(f, -1):
		return -1, true
	}
	bf := new(big.Float).SetInt(i)
	return new(big.Float).SetFloat64(f).Cmp(bf), true
}

// pyEq is Python's == between two values, where True == 1 and 1 == 1.0.
func pyEq(a, b any) bool {
	switch ta := a.(type) {
	case nil:
		return b == nil
	case string:
		tb, ok := b.(string)
		return ok && ta == tb
	case []any:
		tb, ok := b.([]any)
		if !ok || len(ta) != len(tb) {
			return false
		}
		for i := range ta {
			if !pyEq(ta[i], tb[i]) {
				return false
			}
		}
		return true
	case *Object:
		tb, ok := b.(*Object)
		if !ok || ta.Len() != tb.Len() {
			return false
		}
		for _, k := range ta.keys {
			vb, ok := tb.vals[k]
			if !ok || !pyEq(ta.vals[k], vb) {
				return false
			}
		}
		return true
	}
	na, ok := numeric(a)
	if !ok {
		return false
	}
	nb, ok := numeric(b)
	if !ok {
		return false
	}
	c, ok := numCmp(na, nb)
	return ok && c == 0
}

// numeric maps bools onto ints, as Python's int subclassing does.
func numeric(v any) (any, bool) {
	switch t := v.(type) {
	case bool:
		if t {
			return int64(1), true
		}
		return int64(0), true
	case int64, *big.Int, float64:
		return t, true
	}
	return nil, false
}

// jsEqual is python-jsonschema's _utils.equal: like == but a bool never
// equals a number, at any depth.
func jsEqual(a, b any) bool {
	_, as := a.(string)
	_, bs := b.(string)
	if as || bs {
		return pyEq(a, b)
	}
	if la, ok := a.([]any); ok {
		lb, ok := b.([]any)
		if !ok {
			return false
		}
		if len(la) != len(lb) {
			return false
		}
		for i := range la {
			if !jsEqual(la[i], lb[i]) {
				return false
			}
		}
		return true
	}
	if oa, ok := a.(*Object); ok {
		ob, ok := b.(*Object)
		if !ok || oa.Len() != ob.Len() {
			return false
		}
		for _, k := range oa.keys {
			vb, ok := ob.vals[k]
			if !ok || !jsEqual(oa.vals[k], vb) {
				return false
			}
		}
		return true
	}
	return unboolEq(a, b)
}

// unboolEq compares two scalars after python-jsonschema's unbool: bools
// only equal bools of the same value, everything else uses ==.
func unboolEq(a, b any) bool {
	ba, aBool := a.(bool)
	bb, bBool := b.(bool)
	if aBool || bBool {
		return aBool && bBool && ba == bb
	}
	return pyEq(a, b)
}
