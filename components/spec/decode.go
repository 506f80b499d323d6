package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
)

// decodeStrict decodes the JSON raw into out (a pointer) with exact key
// names: encoding/json matches keys case-insensitively (fsId, FSID and fsid
// are one field to it, the last one winning), so it cannot be used on config
// where a misspelt key must be an error. Every problem is added to e under the
// path of its field, and decoding goes on: a field that fails keeps its zero
// value and is marked bad, so validation does not report it again.
func decodeStrict(raw []byte, out any, field string, e *errs) {
	decodeValue(raw, reflect.ValueOf(out).Elem(), field, e)
}

func decodeValue(raw []byte, v reflect.Value, field string, e *errs) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return // absent: the zero value
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		decodeValue(raw, p.Elem(), field, e)
		v.Set(p)
	case reflect.Struct:
		decodeStruct(raw, v, field, e)
	case reflect.Map:
		members, ok := objectMembers(raw, field, e)
		if !ok {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(members))
		for _, mem := range members {
			elem := reflect.New(v.Type().Elem()).Elem()
			decodeValue(mem.value, elem, field+"."+mem.key, e)
			m.SetMapIndex(reflect.ValueOf(mem.key).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			e.bad(field, "must be a list, got %s", describeJSON(raw))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			decodeValue(item, s.Index(i), fmt.Sprintf("%s[%d]", field, i), e)
		}
		v.Set(s)
	default:
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			e.bad(field, "must be %s, got %s", describeKind(v.Kind()), describeJSON(raw))
		}
	}
}

// decodeStruct decodes an object into a struct by its json tags, exactly.
func decodeStruct(raw []byte, v reflect.Value, field string, e *errs) {
	members, ok := objectMembers(raw, field, e)
	if !ok {
		return
	}
	fields := jsonFields(v.Type())
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	present := map[string]bool{}
	for _, mem := range members {
		present[mem.key] = true
	}
	for _, mem := range members {
		i, known := fields[mem.key]
		if !known {
			hint, meant := suggest(mem.key, names)
			e.bad(join(field, mem.key), "unknown key %q%s", mem.key, hint)
			if meant != "" && !present[meant] {
				// The key meant is missing: say so once, here.
				e.failed = append(e.failed, join(field, meant))
			}
			continue
		}
		decodeValue(mem.value, v.Field(i), join(field, mem.key), e)
	}
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

type member struct {
	key   string
	value json.RawMessage
}

// objectMembers lists the members of a JSON object in order. A key given
// twice is an error (the engine never sends one, but a hand-written value might).
func objectMembers(raw []byte, field string, e *errs) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		e.bad(field, "must be an object, got %s", describeJSON(raw))
		return nil, false
	}
	var out []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			e.bad(field, "is not valid JSON: %v", err)
			return nil, false
		}
		key := tok.(string) // object keys are always strings
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			e.bad(join(field, key), "is not valid JSON: %v", err)
			return nil, false
		}
		if seen[key] {
			e.bad(join(field, key), "is given twice")
			continue
		}
		seen[key] = true
		out = append(out, member{key, val})
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		e.bad(field, "is not valid JSON: %v", err)
		return nil, false
	}
	return out, true
}

// stringMember is the string value of the exact key of a JSON object, or "".
func stringMember(raw []byte, key string) string {
	members, ok := objectMembers(raw, "", &errs{})
	if !ok {
		return ""
	}
	for _, m := range members {
		var s string
		if m.key == key && json.Unmarshal(m.value, &s) == nil {
			return s
		}
	}
	return ""
}

// jsonFields maps the json names of a struct's fields to their indexes.
func jsonFields(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && name != "" && name != "-" {
			out[name] = i
		}
	}
	return out
}

// suggest names the key that was probably meant (and returns it): the same
// key in another case, else a close one; else it lists the valid keys.
func suggest(key string, valid []string) (hint, meant string) {
	best, bestDist := "", -1
	for _, v := range valid {
		if strings.EqualFold(v, key) {
			return fmt.Sprintf(": keys are case-sensitive, did you mean %q?", v), v
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(v)); bestDist < 0 || d < bestDist || (d == bestDist && v < best) {
			best, bestDist = v, d
		}
	}
	if best != "" && bestDist <= max(2, len(best)/3) {
		return fmt.Sprintf(": did you mean %q?", best), best
	}
	sorted := slices.Sorted(slices.Values(valid))
	return fmt.Sprintf(": want one of %s", strings.Join(sorted, ", ")), ""
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func describeKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	}
	return "a " + k.String()
}

// describeJSON says what a JSON value is, for messages.
func describeJSON(raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Sprintf("invalid JSON %q", raw)
	}
	switch v.(type) {
	case string:
		return "the string " + string(raw)
	case float64:
		return "the number " + string(raw)
	case bool:
		return string(raw)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return string(raw)
}
