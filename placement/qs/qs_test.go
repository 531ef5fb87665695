package qs

import (
	"reflect"
	"strings"
	"testing"
)

func mustParse(t *testing.T, raw string) Params {
	t.Helper()
	p, err := ParseQuery(raw)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", raw, err)
	}
	return p
}

func TestParseQuery(t *testing.T) {
	p := mustParse(t, "a=1&b=x+y&a=%41%zz&c&;d=%2C")
	want := Params{{"a", "1"}, {"b", "x y"}, {"a", "A%zz"}, {"c", ""}, {"d", ","}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %#v want %#v", p, want)
	}
	if v, _ := p.Get("a"); v != "A%zz" {
		t.Errorf("Get last = %q", v)
	}
	if v, _ := p.First("a"); v != "1" {
		t.Errorf("First = %q", v)
	}
	if _, err := ParseQuery("a=%ff"); err == nil || !strings.Contains(err.Detail, "can't decode byte 0xff") {
		t.Errorf("invalid utf-8: %v", err)
	}
}

func TestResources(t *testing.T) {
	tests := []struct {
		in      string
		want    []Amount
		wantErr string
	}{
		{"VCPU:1,MEMORY_MB:1024", []Amount{{"VCPU", 1}, {"MEMORY_MB", 1024}}, ""},
		{"VCPU:1,VCPU:3", []Amount{{"VCPU", 3}}, ""},
		{"VCPU: 2", []Amount{{"VCPU", 2}}, ""},
		{"VCPU:1_0", []Amount{{"VCPU", 10}}, ""},
		{"", nil, "Got: empty string."},
		{"VCPU", nil, "?resources=VCPU:2,MEMORY_MB:1024. Got: VCPU."},
		{"VCPU:1:2", nil, "Got: VCPU:1:2."},
		{"VCPU:x", nil, "Requested resource VCPU expected positive integer amount. Got: x."},
		{"VCPU:0", nil, "Requested resource VCPU requires amount >= 1. Got: 0."},
		{"VCPU:-007", nil, "requires amount >= 1. Got: -7."},
	}
	for _, tc := range tests {
		got, err := Resources(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Detail, tc.wantErr) {
				t.Errorf("Resources(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Resources(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestTraitsParams(t *testing.T) {
	tests := []struct {
		values  []string
		minor   int
		want    Traits
		wantErr string
	}{
		{[]string{"A,B"}, 17, Traits{Required: [][]string{{"A"}, {"B"}}}, ""},
		{[]string{"A", "B"}, 38, Traits{Required: [][]string{{"B"}}}, ""},
		{[]string{"A", "in:C,B"}, 39, Traits{Required: [][]string{{"A"}, {"B", "C"}}}, ""},
		{[]string{"A,!!B"}, 22, Traits{Required: [][]string{{"A"}}, Forbidden: []string{"B"}}, ""},
		{[]string{""}, 17, Traits{}, "Expected 'required' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got an empty trait in: "},
		{[]string{",,"}, 22, Traits{}, "of the form: HW_CPU_X86_VMX,!CUSTOM_MAGIC. Got an empty trait in: ,,"},
		{[]string{"!A"}, 17, Traits{}, "of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: !A"},
		{[]string{"in:A,B"}, 38, Traits{}, "only supported since microversion 1.39. Got: in:A,B"},
		{[]string{"in:A,!B"}, 39, Traits{}, "does not support forbidden traits. Got: in:A,!B"},
		{[]string{"in:A,,B"}, 39, Traits{}, "of the form: in:HW_CPU_X86_VMX,CUSTOM_MAGIC. Got an empty trait in: in:A,,B"},
	}
	for _, tc := range tests {
		got, err := TraitsParams(tc.values, tc.minor)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Detail, "Invalid query string parameters: ") || !strings.Contains(err.Detail, tc.wantErr) {
				t.Errorf("TraitsParams(%q) err = %v, want %q", tc.values, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("TraitsParams(%q) = %+v, %v; want %+v", tc.values, got, err, tc.want)
		}
	}
}

const (
	agg1 = "11111111-1111-1111-1111-111111111111"
	agg2 = "22222222-2222-2222-2222-222222222222"
)

func TestMemberOfParams(t *testing.T) {
	tests := []struct {
		values  []string
		minor   int
		want    MemberOf
		wantErr string
	}{
		{[]string{agg1}, 3, MemberOf{Required: [][]string{{agg1}}}, ""},
		{[]string{"in:" + agg2 + "," + strings.ToUpper(agg1)}, 3, MemberOf{Required: [][]string{{agg1, agg2}}}, ""},
		{[]string{agg1, "in:" + agg2}, 24, MemberOf{Required: [][]string{{agg1}, {agg2}}}, ""},
		{[]string{agg1, agg2}, 23, MemberOf{}, "Multiple member_of parameters are not supported"},
		{[]string{"!" + agg1, "!in:" + agg2}, 32, MemberOf{Forbidden: []string{agg1, agg2}}, ""},
		{[]string{"!" + agg1}, 31, MemberOf{}, "Forbidden member_of parameters are not supported in the specified microversion"},
		{[]string{agg1 + "," + agg2}, 32, MemberOf{}, "Multiple values for 'member_of' must be prefixed with the 'in:' or '!in:' keyword"},
		{[]string{"in:" + agg1 + ",!" + agg2}, 32, MemberOf{}, "Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: !" + agg2},
	}
	for _, tc := range tests {
		got, err := MemberOfParams(tc.values, "", tc.minor)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Detail, tc.wantErr) {
				t.Errorf("MemberOfParams(%q) err = %v, want %q", tc.values, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("MemberOfParams(%q) = %+v, %v; want %+v", tc.values, got, err, tc.want)
		}
	}
}

func TestParseCandidatesErrors(t *testing.T) {
	tests := []struct {
		query    string
		minor    int
		wantErr  []string
		wantCode string
	}{
		{"", 10, []string{"Invalid query string parameters: 'resources' is a required property", "Failed validating 'required' in schema:"}, ""},
		{"resources=VCPU:1&limit=5", 15, []string{"Invalid query string parameters", "'limit' was unexpected"}, ""},
		{"resources=VCPU:1&limit=cow", 16, []string{"Failed validating 'pattern'", "'cow' does not match '^[1-9][0-9]*$'"}, ""},
		{"resources=VCPU:1&limit=0", 16, []string{"Failed validating 'pattern'"}, ""},
		{"resources=VCPU:1&required=A", 16, []string{"'required' was unexpected"}, ""},
		{"resources=MEMORY_MB:1024&resources1=VCPU:1", 24, []string{"'resources1' was unexpected"}, ""},
		{"resources01=VCPU:1", 25, []string{"'resources01' does not match any of the regexes"}, ""},
		{"resources1@=VCPU:1", 33, []string{"'resources1@' does not match any of the regexes", "^member_of([a-zA-Z0-9_-]{1,64})?$"}, ""},
		{"resources=VCPU:1&group_policy=bogus", 25, []string{"'bogus' is not one of ['none', 'isolate']"}, ""},
		{"resources1=VCPU:1&resources2=VCPU:1", 25, []string{`The "group_policy" parameter is required when specifying more than one "resources{N}" parameter.`}, ""},
		{"required=FOO&required1=BAR", 25, []string{"Found the following orphaned traits keys: required, required1"}, ""},
		{"member_of=" + agg1 + "&member_of3=" + agg2, 25, []string{"Found the following orphaned member_of keys: member_of, member_of3"}, ""},
		{"group_policy=isolate", 25, []string{"At least one request group (`resources` or `resources{$S}`) is required."}, ""},
		{"resources=VCPU:1&in_tree1=" + agg1, 31, []string{"All request groups must specify resources."}, ""},
		{"resources=VCPU:1&in_tree=life-is-beautiful", 31, []string{"Expected 'in_tree' parameter to be a format of uuid. Got: life-is-beautiful"}, ""},
		{"resources=VCPU:1&root_required=A", 34, []string{"'root_required' does not match any of the regexes"}, ""},
		{"resources=VCPU:1&root_required=A&root_required=B", 35, []string{"Query parameter 'root_required' may be specified only once."}, CodeDuplicateKey},
		{"resources=VCPU:1&root_required=A,!A", 35, []string{"Conflicting required and forbidden traits found in root_required: A"}, CodeBadValue},
		{"resources=VCPU:1&root_required=in:A,B", 39, []string{"only supported since microversion 1.39"}, ""},
		{"resources1=VCPU:1&required2=X&group_policy=none", 36, []string{"Resourceless suffixed group request should be specified in `same_subtree` query param: bad group(s) - ['2']."}, CodeBadValue},
		{"member_of1=" + agg1 + "&group_policy=none", 36, []string{"There must be at least one resources or resources[$S] parameter."}, CodeMissingValue},
		{"resources_COMPUTE=VCPU:1&resources_ACCEL=CUSTOM_FPGA:1&same_subtree=COMPUTE,_ACCEL&group_policy=none", 36,
			[]string{"Real suffixes should be specified in `same_subtree`: ['COMPUTE'] not found in ['_COMPUTE', '_ACCEL']."}, CodeBadValue},
		{"resources_COMPUTE=VCPU:1&same_subtree=_COMPUTE,,_ACCEL", 36, []string{"Empty string (unsuffixed group) can not be specified in `same_subtree`"}, CodeBadValue},
		{"resources=VCPU:1&required=A,!A", 22, []string{"Conflicting required and forbidden traits found in the following traits keys: required: (A)"}, ""},
		{"resources=VCPU:1&required=in:A,B&required=!A,!B", 39, []string{"traits keys: required: (A, B)"}, ""},
	}
	for _, tc := range tests {
		_, err := ParseCandidates(mustParse(t, tc.query), tc.minor)
		if err == nil {
			t.Errorf("ParseCandidates(%q, 1.%d): no error", tc.query, tc.minor)
			continue
		}
		for _, w := range tc.wantErr {
			if !strings.Contains(err.Detail, w) {
				t.Errorf("ParseCandidates(%q, 1.%d) = %q; want substring %q", tc.query, tc.minor, err.Detail, w)
			}
		}
		if err.Code != tc.wantCode {
			t.Errorf("ParseCandidates(%q, 1.%d) code = %q; want %q", tc.query, tc.minor, err.Code, tc.wantCode)
		}
	}
}

func TestParseCandidates(t *testing.T) {
	q, err := ParseCandidates(mustParse(t,
		"resources=VCPU:1&limit=10&limit=1&required_NIC=CUSTOM_HW_NIC_ROOT&resources_PORT1=CUSTOM_VF:2"+
			"&member_of_PORT1=in:"+agg2+","+agg1+"&member_of_PORT1=!"+agg2+"&same_subtree=_NIC,_PORT1&group_policy=isolate&group_policy=none"+
			"&root_required=!B,A&in_tree="+strings.ToUpper(agg1)), 39)
	if err != nil {
		t.Fatal(err)
	}
	want := &CandidatesQuery{
		Groups: []*Group{
			{Suffix: "", Resources: []Amount{{"VCPU", 1}}, InTree: agg1},
			{Suffix: "_NIC", Traits: Traits{Required: [][]string{{"CUSTOM_HW_NIC_ROOT"}}}},
			{Suffix: "_PORT1", Resources: []Amount{{"CUSTOM_VF", 2}}, MemberOf: MemberOf{Required: [][]string{{agg1, agg2}}, Forbidden: []string{agg2}}},
		},
		Limit:         10,
		GroupPolicy:   "isolate",
		RootRequired:  []string{"A"},
		RootForbidden: []string{"B"},
		SameSubtrees:  [][]string{{"_NIC", "_PORT1"}},
	}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("got %+v\nwant %+v", q, want)
		for i := range q.Groups {
			t.Logf("group %d: %+v", i, q.Groups[i])
		}
	}
}

func TestProvidersSchema(t *testing.T) {
	err := ProvidersSchema(18).Validate(mustParse(t, "foo=bar"))
	want := "Invalid query string parameters: Additional properties are not allowed ('foo' was unexpected)  " +
		"Failed validating 'additionalProperties' in schema:     {'additionalProperties': False, " +
		"     'properties': {'in_tree': {'format': 'uuid', 'type': 'string'}, " +
		"                    'member_of': {'type': 'string'},                     'name': {'type': 'string'}, " +
		"                    'required': {'type': 'string'},                     'resources': {'type': 'string'}, " +
		"                    'uuid': {'format': 'uuid', 'type': 'string'}},      'type': 'object'}  " +
		"On instance:     {'foo': 'bar'}"
	if err == nil || err.Detail != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
	err = ProvidersSchema(14).Validate(mustParse(t, "in_tree=nope"))
	if err == nil || !strings.Contains(err.Detail, "'nope' is not a 'uuid'") {
		t.Errorf("uuid format: %v", err)
	}
	if err := ProvidersSchema(14).Validate(mustParse(t, "in_tree="+agg1+"&resources=VCPU:1")); err != nil {
		t.Errorf("valid: %v", err)
	}
}
