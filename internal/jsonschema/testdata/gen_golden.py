#!/usr/bin/python3
"""Regenerate golden.json from the real python-jsonschema.

Run with Debian bookworm's interpreter and packages (python3-jsonschema
4.10.3, python3-oslo.utils):

    /usr/bin/python3 gen_golden.py

Each case validates an instance (JSON text) against a schema (JSON text,
either inline or one of Placement's schemas dumped into placement/*.json
by dump_placement_schemas.py) exactly as Placement does, and records
str(error). The "values" section records repr() and pprint.pformat() of
assorted JSON values, which the error text is built from.
"""
import collections
import json
import os
import pprint
import random

import jsonschema
from oslo_utils import uuidutils

HERE = os.path.dirname(os.path.abspath(__file__))


# Placement registers this over jsonschema's own "uuid" check
# (placement/util.py), so the golden data must see it too.
@jsonschema.FormatChecker.cls_checks('uuid')
def _validate_uuid_format(instance):
    return uuidutils.is_uuid_like(instance)


def load_placement():
    schemas = collections.OrderedDict()
    for fn in sorted(os.listdir(os.path.join(HERE, "placement"))):
        if not fn.endswith(".json"):
            continue
        with open(os.path.join(HERE, "placement", fn)) as fh:
            for name, schema in json.load(fh).items():
                schemas[fn[:-5] + "." + name] = json.dumps(schema)
    return schemas


U1 = "30e4ce5e-bd36-4d0d-9a4e-b5a1c8d0e2a1"
U2 = "4e8e5957-649f-477b-9e5b-f1f75b21c03c"
LONG = "a" * 256
LONG_NAME = "CUSTOM_" + "A" * 250

def alloc_112(rp=U1, resources=None, gen=None, **top):
    body = {"allocations": {rp: {"resources": resources or {"DISK_GB": 10}}},
            "project_id": "p", "user_id": "u"}
    if gen is not None:
        body["allocations"][rp]["generation"] = gen
    body.update(top)
    return body

# (name, schema, instance) where schema is "module.NAME" or a dict, and
# instance is a Python value (dumped to JSON) or a str of raw JSON text.
CASES = [
    # --- inventory
    ("inv-post-no-total", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB"}),
    ("inv-post-negative", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": -1}),
    ("inv-post-zero-total", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 0}),
    ("inv-post-zero-min-unit", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 10, "min_unit": 0}),
    ("inv-post-zero-max-unit", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 10, "max_unit": 0}),
    ("inv-post-zero-step", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 10, "step_size": 0}),
    ("inv-post-total-max", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 2147483648}),
    ("inv-post-reserved-max", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 1, "reserved": 2147483648}),
    ("inv-post-ratio-max", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 1, "allocation_ratio": 3.5e38}),
    ("inv-post-ratio-max-int", "inventory.POST_INVENTORY_SCHEMA", '{"resource_class": "DISK_GB", "total": 1, "allocation_ratio": 340282000000000000000000000000000000001}'),
    ("inv-post-ratio-str", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 1, "allocation_ratio": "1.0"}),
    ("inv-post-total-float-int", "inventory.POST_INVENTORY_SCHEMA", '{"resource_class": "DISK_GB", "total": 1.0}'),
    ("inv-post-total-float", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 1.5}),
    ("inv-post-total-bool", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": True}),
    ("inv-post-total-str", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": "10"}),
    ("inv-post-total-huge", "inventory.POST_INVENTORY_SCHEMA", '{"resource_class": "DISK_GB", "total": 99999999999999999999999999}'),
    ("inv-post-total-inf", "inventory.POST_INVENTORY_SCHEMA", '{"resource_class": "DISK_GB", "total": 1e400}'),
    ("inv-post-total-1e10", "inventory.POST_INVENTORY_SCHEMA", '{"resource_class": "DISK_GB", "total": 1e10}'),
    ("inv-post-total-neg-exp", "inventory.POST_INVENTORY_SCHEMA", '{"resource_class": "DISK_GB", "total": -1e-7}'),
    ("inv-post-bad-class", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "bad-class", "total": 1}),
    ("inv-post-class-int", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": 5, "total": 1}),
    ("inv-post-extra", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 1, "bad_field": 1}),
    ("inv-post-extras", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "zz": 1, "total": 1, "aa": 2}),
    ("inv-post-list", "inventory.POST_INVENTORY_SCHEMA", [1, 2]),
    ("inv-post-valid", "inventory.POST_INVENTORY_SCHEMA", {"resource_class": "DISK_GB", "total": 1, "allocation_ratio": 1}),
    ("inv-base-no-gen", "inventory.BASE_INVENTORY_SCHEMA", {"total": 1}),
    ("inv-base-gen-str", "inventory.BASE_INVENTORY_SCHEMA", {"total": 1, "resource_provider_generation": "0"}),
    ("inv-base-two-errors", "inventory.BASE_INVENTORY_SCHEMA", {"total": 0, "reserved": -1, "resource_provider_generation": 0}),
    ("inv-put-deep-zero", "inventory.PUT_INVENTORY_SCHEMA", {"resource_provider_generation": 0, "inventories": {"DISK_GB": {"total": 0}}}),
    ("inv-put-no-gen", "inventory.PUT_INVENTORY_SCHEMA", {"inventories": {}}),
    ("inv-put-inventories-list", "inventory.PUT_INVENTORY_SCHEMA", {"resource_provider_generation": 0, "inventories": []}),
    ("inv-put-deep-extra", "inventory.PUT_INVENTORY_SCHEMA", {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 1, "bad_field": 2}}}),
    ("inv-put-lower-class", "inventory.PUT_INVENTORY_SCHEMA", {"resource_provider_generation": 0, "inventories": {"vcpu": {"total": 0}}}),
    ("inv-put-deep-vs-top", "inventory.PUT_INVENTORY_SCHEMA", {"inventories": {"VCPU": {"total": 0}}}),
    ("inv-put-record", "inventory.PUT_INVENTORY_RECORD_SCHEMA", {"total": 10, "reserved": 11.5}),
    ("inv-put-malformed-body", "inventory.PUT_INVENTORY_SCHEMA", "\"a string\""),
    # --- allocations 1.0
    ("alloc10-empty-list", "allocation.ALLOCATION_SCHEMA", {"allocations": []}),
    ("alloc10-zero", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"DISK_GB": 0}}]}),
    ("alloc10-no-resources", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": U1}}]}),
    ("alloc10-bad-uuid", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": "not-a-uuid"}, "resources": {"DISK_GB": 1}}]}),
    ("alloc10-empty-resources", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {}}]}),
    ("alloc10-lower-class", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"disk_gb": 1}}]}),
    ("alloc10-two-lower", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"vcpu": 1, "disk_gb": 1}}]}),
    ("alloc10-nothing", "allocation.ALLOCATION_SCHEMA", {}),
    ("alloc10-rp-extra", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": U1, "name": "x"}, "resources": {"DISK_GB": 1}}]}),
    ("alloc10-valid", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"DISK_GB": 1}}]}),
    ("alloc10-uuid-braces", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": "{urn:uuid:" + U1.upper().replace("-", "") + "}"}, "resources": {"DISK_GB": 1}}]}),
    ("alloc10-uuid-int", "allocation.ALLOCATION_SCHEMA", {"allocations": [{"resource_provider": {"uuid": 1}, "resources": {"DISK_GB": 1}}]}),
    # --- allocations 1.8
    ("alloc18-no-project", "allocation.ALLOCATION_SCHEMA_V1_8", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"DISK_GB": 1}}], "user_id": "u"}),
    ("alloc18-no-user", "allocation.ALLOCATION_SCHEMA_V1_8", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"DISK_GB": 1}}], "project_id": "p"}),
    ("alloc18-empty-project", "allocation.ALLOCATION_SCHEMA_V1_8", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"DISK_GB": 1}}], "project_id": "", "user_id": "u"}),
    ("alloc18-long-user", "allocation.ALLOCATION_SCHEMA_V1_8", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"DISK_GB": 1}}], "project_id": "p", "user_id": LONG}),
    ("alloc18-long-project-spaces", "allocation.ALLOCATION_SCHEMA_V1_8", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"DISK_GB": 1}}], "project_id": "word " * 60, "user_id": "u"}),
    # --- allocations 1.12
    ("alloc112-empty", "allocation.ALLOCATION_SCHEMA_V1_12", {"allocations": {}, "project_id": "p", "user_id": "u"}),
    ("alloc112-bad-rp", "allocation.ALLOCATION_SCHEMA_V1_12", {"allocations": {"not-a-uuid": {"resources": {"DISK_GB": 1}}}, "project_id": "p", "user_id": "u"}),
    ("alloc112-list", "allocation.ALLOCATION_SCHEMA_V1_12", {"allocations": [{"resource_provider": {"uuid": U1}, "resources": {"DISK_GB": 1}}], "project_id": "p", "user_id": "u"}),
    ("alloc112-zero", "allocation.ALLOCATION_SCHEMA_V1_12", alloc_112(resources={"DISK_GB": 0})),
    ("alloc112-gen-str", "allocation.ALLOCATION_SCHEMA_V1_12", alloc_112(gen="1")),
    ("alloc112-two-bad", "allocation.ALLOCATION_SCHEMA_V1_12", {"allocations": {U2: {"resources": {"VCPU": 0}}, U1: {"resources": {"DISK_GB": -1}}}, "project_id": "p", "user_id": "u"}),
    ("alloc112-no-resources", "allocation.ALLOCATION_SCHEMA_V1_12", {"allocations": {U1: {}}, "project_id": "p", "user_id": "u"}),
    ("alloc112-resources-empty", "allocation.ALLOCATION_SCHEMA_V1_12", {"allocations": {U1: {"resources": {}}}, "project_id": "p", "user_id": "u"}),
    ("alloc112-extra-top", "allocation.ALLOCATION_SCHEMA_V1_12", alloc_112(consumer_generation=1)),
    ("alloc112-valid", "allocation.ALLOCATION_SCHEMA_V1_12", alloc_112()),
    ("alloc-deletable-empty", "allocation.DELETABLE_ALLOCATIONS", {"allocations": {}, "project_id": "p", "user_id": "u"}),
    # --- allocations 1.28
    ("alloc128-no-gen", "allocation.ALLOCATION_SCHEMA_V1_28", alloc_112()),
    ("alloc128-gen-str", "allocation.ALLOCATION_SCHEMA_V1_28", alloc_112(consumer_generation="x")),
    ("alloc128-gen-null", "allocation.ALLOCATION_SCHEMA_V1_28", alloc_112(consumer_generation=None)),
    ("alloc128-gen-float", "allocation.ALLOCATION_SCHEMA_V1_28", alloc_112(consumer_generation=1.5)),
    ("alloc128-gen-obj", "allocation.ALLOCATION_SCHEMA_V1_28", alloc_112(consumer_generation={"a": 1})),
    # --- allocations 1.34 / 1.38
    ("alloc134-mapping-str", "allocation.ALLOCATION_SCHEMA_V1_34", alloc_112(consumer_generation=None, mappings={"a": "beta"})),
    ("alloc134-mapping-empty", "allocation.ALLOCATION_SCHEMA_V1_34", alloc_112(consumer_generation=None, mappings={})),
    ("alloc134-mapping-empty-list", "allocation.ALLOCATION_SCHEMA_V1_34", alloc_112(consumer_generation=None, mappings={"a": []})),
    ("alloc134-mapping-bad-uuid", "allocation.ALLOCATION_SCHEMA_V1_34", alloc_112(consumer_generation=None, mappings={"a": ["beta"]})),
    ("alloc134-mapping-bad-key", "allocation.ALLOCATION_SCHEMA_V1_34", alloc_112(consumer_generation=None, mappings={"": [U1]})),
    ("alloc134-valid", "allocation.ALLOCATION_SCHEMA_V1_34", alloc_112(consumer_generation=None, mappings={"_a": [U1]})),
    ("alloc138-no-type", "allocation.ALLOCATION_SCHEMA_V1_38", alloc_112(consumer_generation=None)),
    ("alloc138-bad-type", "allocation.ALLOCATION_SCHEMA_V1_38", alloc_112(consumer_generation=None, consumer_type="instance")),
    ("alloc138-empty-type", "allocation.ALLOCATION_SCHEMA_V1_38", alloc_112(consumer_generation=None, consumer_type="")),
    ("alloc138-type-newline", "allocation.ALLOCATION_SCHEMA_V1_38", alloc_112(consumer_generation=None, consumer_type="INSTANCE\n")),
    ("alloc138-valid", "allocation.ALLOCATION_SCHEMA_V1_38", alloc_112(consumer_generation=None, consumer_type="INSTANCE")),
    ("alloc134-extra-type", "allocation.ALLOCATION_SCHEMA_V1_34", alloc_112(consumer_generation=None, consumer_type="INSTANCE")),
    # --- POST /allocations
    ("post113-empty", "allocation.POST_ALLOCATIONS_V1_13", {}),
    ("post113-bad-consumer", "allocation.POST_ALLOCATIONS_V1_13", {"consumer": alloc_112()}),
    ("post113-two-bad-consumers", "allocation.POST_ALLOCATIONS_V1_13", {"consumer2": {}, "consumer1": {}}),
    ("post113-nested", "allocation.POST_ALLOCATIONS_V1_13", {U1: alloc_112(resources={"VCPU": 0})}),
    ("post128-no-gen", "allocation.POST_ALLOCATIONS_V1_28", {U1: alloc_112()}),
    ("post134-mapping", "allocation.POST_ALLOCATIONS_V1_34", {U1: alloc_112(consumer_generation=1, mappings=[])}),
    ("post138-type", "allocation.POST_ALLOCATIONS_V1_38", {U1: alloc_112(consumer_generation=1, consumer_type="instance")}),
    ("post138-valid", "allocation.POST_ALLOCATIONS_V1_38", {U1: alloc_112(consumer_generation=1, consumer_type="INSTANCE")}),
    # --- reshaper
    ("reshape-bad-field", "reshaper.POST_RESHAPER_SCHEMA", {"inventories": {U1: {"resource_provider_generation": 0, "inventories": {}}}, "allocations": {}, "bad_field": 1}),
    ("reshape-no-inventories", "reshaper.POST_RESHAPER_SCHEMA", {"inventories": {}, "allocations": {}}),
    ("reshape-missing-allocs", "reshaper.POST_RESHAPER_SCHEMA", {"inventories": {U1: {"resource_provider_generation": 0, "inventories": {}}}}),
    ("reshape-bad-rp", "reshaper.POST_RESHAPER_SCHEMA", {"inventories": {"rp": {}}, "allocations": {}}),
    ("reshape-deep", "reshaper.POST_RESHAPER_SCHEMA", {"inventories": {U1: {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 0}}}}, "allocations": {}}),
    ("reshape134-mappings", "reshaper.POST_RESHAPER_SCHEMA_V1_34", {"inventories": {U1: {"resource_provider_generation": 0, "inventories": {}}}, "allocations": {U2: alloc_112(consumer_generation=None, mappings={"x": "y"})}}),
    ("reshape-consumer-type-old", "reshaper.POST_RESHAPER_SCHEMA_V1_34", {"inventories": {U1: {"resource_provider_generation": 0, "inventories": {}}}, "allocations": {U2: alloc_112(consumer_generation=None, consumer_type="INSTANCE")}}),
    ("reshape138-valid", "reshaper.POST_RESHAPER_SCHEMA_V1_38", {"inventories": {U1: {"resource_provider_generation": 0, "inventories": {}}}, "allocations": {U2: alloc_112(consumer_generation=None, consumer_type="INSTANCE")}}),
    # --- resource providers
    ("rp-long-name", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": "x" * 201}),
    ("rp-bad-uuid", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": "n", "uuid": "abc"}),
    ("rp-uuid-nodash", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": "n", "uuid": U1.replace("-", "")}),
    ("rp-uuid-urn", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": "n", "uuid": "urn:uuid:" + U1}),
    ("rp-uuid-0x", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": "n", "uuid": "0x" + U1.replace("-", "")[2:]}),
    ("rp-uuid-spaces", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": "n", "uuid": " " + U1.replace("-", "")[1:]}),
    ("rp-uuid-odd-dashes", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": "n", "uuid": "-" + U1.replace("-", "") + "--"}),
    ("rp-no-name", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"uuid": U1}),
    ("rp-extra", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": "n", "parent_provider_uuid": U1}),
    ("rp-name-null", "resource_provider.POST_RESOURCE_PROVIDER_SCHEMA", {"name": None}),
    ("rp114-parent-int", "resource_provider.POST_RP_SCHEMA_V1_14", {"name": "n", "parent_provider_uuid": 5}),
    ("rp114-parent-bad", "resource_provider.POST_RP_SCHEMA_V1_14", {"name": "n", "parent_provider_uuid": "abc"}),
    ("rp114-parent-null", "resource_provider.POST_RP_SCHEMA_V1_14", {"name": "n", "parent_provider_uuid": None}),
    ("rp114-parent-list", "resource_provider.POST_RP_SCHEMA_V1_14", {"name": "n", "parent_provider_uuid": [U1]}),
    ("rp114-put-uuid", "resource_provider.PUT_RP_SCHEMA_V1_14", {"name": "n", "uuid": U1}),
    ("rps-query-bad-uuid", "resource_provider.GET_RPS_SCHEMA_1_0", {"uuid": "abc"}),
    ("rps-query-extra", "resource_provider.GET_RPS_SCHEMA_1_0", {"member_of": "in:" + U1}),
    ("rps-query-in-tree", "resource_provider.GET_RPS_SCHEMA_1_18", {"in_tree": "x", "required": "FOO"}),
    # --- traits
    ("traits-not-array", "trait.PUT_TRAITS_SCHEMA", {"traits": "invalid_type"}),
    ("traits-not-custom", "trait.PUT_TRAITS_SCHEMA", {"traits": ["CUSTOM_OK", "HW_CPU"]}),
    ("traits-empty-name", "trait.SET_TRAITS_FOR_RP_SCHEMA", {"traits": [""], "resource_provider_generation": 0}),
    ("traits-no-gen", "trait.SET_TRAITS_FOR_RP_SCHEMA", {"traits": []}),
    ("traits-gen-str", "trait.SET_TRAITS_FOR_RP_SCHEMA", {"traits": [], "resource_provider_generation": "0"}),
    ("traits-extra", "trait.SET_TRAITS_FOR_RP_SCHEMA", {"traits": [], "resource_provider_generation": 0, "foo": 1}),
    ("traits-long", "trait.SET_TRAITS_FOR_RP_SCHEMA", {"traits": ["T" * 256], "resource_provider_generation": 0}),
    ("trait-custom-bad", "trait.CUSTOM_TRAIT", "\"CUSTOM_lower\""),
    ("trait-list-query", "trait.LIST_TRAIT_SCHEMA", {"name": "in:A", "associated": "x", "other": "y"}),
    # --- aggregates
    ("agg11-bad-uuid", "aggregate.PUT_AGGREGATES_SCHEMA_V1_1", ["abc"]),
    ("agg11-dupes", "aggregate.PUT_AGGREGATES_SCHEMA_V1_1", [U1, U1]),
    ("agg11-dupes-bad", "aggregate.PUT_AGGREGATES_SCHEMA_V1_1", ["x", "x"]),
    ("agg11-object", "aggregate.PUT_AGGREGATES_SCHEMA_V1_1", {"aggregates": [U1]}),
    ("agg119-no-gen", "aggregate.PUT_AGGREGATES_SCHEMA_V1_19", {"aggregates": [U1]}),
    ("agg119-list", "aggregate.PUT_AGGREGATES_SCHEMA_V1_19", [U1]),
    ("agg119-dupes", "aggregate.PUT_AGGREGATES_SCHEMA_V1_19", {"aggregates": [U1, U2, U1], "resource_provider_generation": 1}),
    ("agg119-ints", "aggregate.PUT_AGGREGATES_SCHEMA_V1_19", {"aggregates": [1, 2], "resource_provider_generation": 1}),
    # --- resource classes
    ("rc-bad-name", "resource_class.POST_RC_SCHEMA_V1_2", {"name": "IRON_NFV"}),
    ("rc-long", "resource_class.POST_RC_SCHEMA_V1_2", {"name": LONG_NAME}),
    ("rc-extra", "resource_class.POST_RC_SCHEMA_V1_2", {"name": "CUSTOM_A", "description": "x"}),
    ("rc-illegal", "resource_class.PUT_RC_SCHEMA_V1_2", {"name": "CUSTOM_Illegal&@!"}),
    # --- usages
    ("usages-no-project", "usage.GET_USAGES_SCHEMA_1_9", {"user_id": "u"}),
    ("usages-bad-type", "usage.GET_USAGES_SCHEMA_V1_38", {"project_id": "p", "consumer_type": "instance"}),
    ("usages-all", "usage.GET_USAGES_SCHEMA_V1_38", {"project_id": "p", "consumer_type": "all"}),
    ("usages-extra-type", "usage.GET_USAGES_SCHEMA_1_9", {"project_id": "p", "consumer_type": "all"}),
    # --- allocation candidates (query strings)
    ("ac110-limit", "allocation_candidate.GET_SCHEMA_1_10", {"resources": "VCPU:1", "limit": "1"}),
    ("ac110-no-resources", "allocation_candidate.GET_SCHEMA_1_10", {}),
    ("ac116-limit-zero", "allocation_candidate.GET_SCHEMA_1_16", {"resources": "VCPU:1", "limit": "0"}),
    ("ac116-limit-neg", "allocation_candidate.GET_SCHEMA_1_16", {"resources": "VCPU:1", "limit": "-1"}),
    ("ac116-limit-empty", "allocation_candidate.GET_SCHEMA_1_16", {"resources": "VCPU:1", "limit": ""}),
    ("ac116-limit-int", "allocation_candidate.GET_SCHEMA_1_16", {"resources": "VCPU:1", "limit": 0}),
    ("ac116-required", "allocation_candidate.GET_SCHEMA_1_16", {"resources": "VCPU:1", "required": "X"}),
    ("ac125-resources01", "allocation_candidate.GET_SCHEMA_1_25", {"resources01": "VCPU:1"}),
    ("ac125-policy", "allocation_candidate.GET_SCHEMA_1_25", {"resources1": "VCPU:1", "group_policy": "bad"}),
    ("ac125-in-tree", "allocation_candidate.GET_SCHEMA_1_25", {"resources": "VCPU:1", "in_tree": U1}),
    ("ac125-limit", "allocation_candidate.GET_SCHEMA_1_25", {"resources": "VCPU:1", "limit": "x1"}),
    ("ac133-long-suffix", "allocation_candidate.GET_SCHEMA_1_33", {"resources_" + "01234567" * 8: "VCPU:1"}),
    ("ac133-at", "allocation_candidate.GET_SCHEMA_1_33", {"resources1@": "VCPU:1"}),
    ("ac133-root-required", "allocation_candidate.GET_SCHEMA_1_33", {"resources": "VCPU:1", "root_required": "X"}),
    ("ac136-two-bad", "allocation_candidate.GET_SCHEMA_1_36", {"resourcesX!": "VCPU:1", "foo": "x", "group_policy": "bad"}),
    ("ac136-valid", "allocation_candidate.GET_SCHEMA_1_36", {"resources_A": "VCPU:1", "same_subtree": "_A", "group_policy": "none"}),
    # --- keywords in general
    ("type-list", {"type": ["integer", "null"]}, "\"x\""),
    ("type-number-bool", {"type": "number"}, "true"),
    ("type-integer-float", {"type": "integer"}, "2.0"),
    ("type-integer-exp", {"type": "integer"}, "2e0"),
    ("type-string-null", {"type": "string"}, "null"),
    ("type-object-list", {"type": "object"}, "[{\"b\": 1, \"a\": 2}]"),
    ("type-array-obj", {"type": "array"}, "{\"b\": [1, 2.5, null, true], \"a\": {}}"),
    ("type-bool", {"type": "boolean"}, "0"),
    ("enum-one-bool", {"enum": [1, "a"]}, "true"),
    ("enum-one-float", {"enum": [1, "a"]}, "1.0"),
    ("enum-true-true", {"enum": [True]}, "true"),
    ("enum-zero-false", {"enum": [False, None]}, "0"),
    ("enum-list", {"enum": [[1], {"a": 1}]}, "[true]"),
    ("enum-obj", {"enum": [[1], {"a": 1}]}, "{\"a\": 1.0}"),
    ("enum-str", {"enum": ["none", "isolate"]}, "\"None\""),
    ("const-bool", {"const": 1}, "true"),
    ("const-ok", {"const": {"a": [1, "b"]}}, "{\"a\": [1.0, \"b\"]}"),
    ("const-list", {"const": [1]}, "[true]"),
    ("unique-bool-int", {"uniqueItems": True}, "[1, true]"),
    ("unique-int-float", {"uniqueItems": True}, "[1, 1.0]"),
    ("unique-objs", {"uniqueItems": True}, "[{\"a\": 1}, {\"a\": 1}]"),
    ("unique-nested-bool", {"uniqueItems": True}, "[[1], [true]]"),
    ("unique-false", {"uniqueItems": False}, "[1, 1]"),
    ("min-max-props", {"minProperties": 2, "maxProperties": 3}, "{\"z\": 1}"),
    ("max-props", {"maxProperties": 1}, "{\"z\": 1, \"a\": 2}"),
    ("min-items", {"minItems": 2}, "[\"x\"]"),
    ("max-items", {"maxItems": 1.0}, "[1, 2]"),
    ("min-length-unicode", {"minLength": 3}, "\"h\\u00e9\""),
    ("max-length-unicode", {"maxLength": 3}, "\"h\\u00e9\\u00e9\\u00e9\""),
    ("max-length-emoji", {"maxLength": 1}, "\"\\ud83d\\ude00\""),
    ("excl-min", {"exclusiveMinimum": 0}, "0"),
    ("excl-max", {"exclusiveMaximum": 1.5}, "1.5"),
    ("minimum-float", {"minimum": 0.5}, "0.25"),
    ("minimum-big", {"minimum": 100000000000000000000000}, "99999999999999999999999"),
    ("maximum-float-int", {"maximum": 9007199254740992}, "9007199254740993.0"),
    ("maximum-int-float", {"maximum": 9007199254740992.0}, "9007199254740993"),
    ("multiple-int", {"multipleOf": 3}, "10"),
    ("multiple-float", {"multipleOf": 0.1}, "0.7"),
    ("multiple-float-ok", {"multipleOf": 0.5}, "1.5"),
    ("multiple-int-float", {"multipleOf": 2}, "3.5"),
    ("pattern-dollar-newline", {"pattern": "^[A-Z]+$"}, "\"ABC\\n\""),
    ("pattern-dollar-2newline", {"pattern": "^[A-Z]+$"}, "\"ABC\\n\\n\""),
    ("pattern-unicode-digit", {"pattern": "^\\d+$"}, "\"\\u0663\""),
    ("pattern-search", {"pattern": "b"}, "\"abc\""),
    ("pattern-fail-quote", {"pattern": "^x"}, "\"it's\""),
    ("pattern-fail-both-quotes", {"pattern": "^x'\""}, "\"it's \\\"q\\\"\""),
    ("pattern-backslash", {"pattern": "^\\w+$"}, "\"a\\\\b\""),
    ("pattern-class-bracket", {"pattern": "^[]$]+$"}, "\"]$\""),
    ("pattern-class-bracket-fail", {"pattern": "^[]$]+$"}, "\"]a\""),
    ("pattern-Z", {"pattern": "^a\\Z"}, "\"a\\n\""),
    ("format-unknown", {"format": "no-such-format"}, "\"nope\""),
    ("format-uuid-null", {"format": "uuid"}, "null"),
    ("any-of-deep", {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}, {"type": "string"}]}, "{\"a\": \"x\"}"),
    ("any-of-tie", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, "1.5"),
    ("any-of-nested", {"properties": {"x": {"anyOf": [{"anyOf": [{"minimum": 5}, {"maximum": 1}]}, {"type": "string", "minLength": 3}]}}}, "{\"x\": 3}"),
    ("one-of-none", {"oneOf": [{"type": "integer"}, {"minimum": 5}]}, "1.5"),
    ("one-of-many", {"oneOf": [{"type": "integer"}, {"minimum": 5}, {"maximum": 10}]}, "7"),
    ("one-of-with-other", {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}], "required": ["c"]}, "{}"),
    ("all-of", {"allOf": [{"type": "integer"}, {"minimum": 5}]}, "1.5"),
    ("not", {"not": {"type": "integer", "minimum": 1}}, "3"),
    ("not-bool", {"not": True}, "3"),
    ("if-then", {"if": {"type": "integer"}, "then": {"minimum": 5}, "else": {"type": "string"}}, "3"),
    ("if-else", {"if": {"type": "integer"}, "then": {"minimum": 5}, "else": {"type": "string"}}, "3.5"),
    ("ref-defs", {"$defs": {"pos": {"type": "integer", "minimum": 1}}, "properties": {"n": {"$ref": "#/$defs/pos"}}}, "{\"n\": 0}"),
    ("ref-sibling", {"$defs": {"pos": {"type": "integer"}}, "properties": {"n": {"$ref": "#/$defs/pos", "maximum": 3}}}, "{\"n\": 4.5}"),
    ("ref-recursive", {"type": "object", "properties": {"child": {"$ref": "#"}, "v": {"type": "string"}}}, "{\"child\": {\"child\": {\"v\": 1}}}"),
    ("items-false", {"prefixItems": [{"type": "integer"}], "items": False}, "[1, 2, 3]"),
    ("prefix-items", {"prefixItems": [{"type": "integer"}, {"type": "string"}]}, "[1, 2, 3]"),
    ("items-schema", {"items": {"type": "integer"}}, "[1, \"2\", 3]"),
    ("contains-none", {"contains": {"type": "integer"}}, "[\"a\"]"),
    ("contains-few", {"contains": {"type": "integer"}, "minContains": 2}, "[\"a\", 1]"),
    ("contains-many", {"contains": {"type": "integer"}, "maxContains": 1}, "[1, 2, 3]"),
    ("property-names", {"propertyNames": {"maxLength": 2}}, "{\"ab\": 1, \"abc\": 2}"),
    ("dependent-required", {"dependentRequired": {"a": ["b", "c"]}}, "{\"a\": 1, \"c\": 2}"),
    ("dependent-schemas", {"dependentSchemas": {"a": {"required": ["b"]}}}, "{\"a\": 1}"),
    ("false-subschema", {"properties": {"a": False}}, "{\"a\": [1, {\"x\": null}]}"),
    ("false-root", False, "1"),
    ("true-root", True, "1"),
    ("additional-schema", {"properties": {"a": {}}, "additionalProperties": {"type": "string"}}, "{\"a\": 1, \"b\": 2}"),
    ("additional-patterns-many", {"patternProperties": {"^b": {}, "^a": {}}, "additionalProperties": False}, "{\"z\": 1, \"c\": 2, \"b\": 3}"),
    ("required-order", {"required": ["z", "a"]}, "{}"),
    ("depth-beats-order", {"properties": {"a": {"properties": {"b": {"type": "string"}}}}, "required": ["q"]}, "{\"a\": {\"b\": 1}}"),
    ("type-first-vs-format", {"format": "uuid", "type": "string"}, "5"),
    # --- pformat and repr in the error text
    ("long-list", {"maxItems": 1}, json.dumps(list(range(40)))),
    ("long-dict", {"maxProperties": 1}, json.dumps({("key%02d" % i): "value %d" % i for i in range(12)})),
    ("long-nested", {"type": "string"}, json.dumps({"allocations": {U1: {"resources": {"VCPU": 1, "MEMORY_MB": 1024, "DISK_GB": 20}, "generation": 3}}, "project_id": "p" * 30, "user_id": "u" * 50, "list": [{"a": "x" * 70}, ["y" * 80, "short"], 1.5]})),
    ("long-string-words", {"type": "integer"}, json.dumps("lorem ipsum dolor sit amet " * 10)),
    ("long-string-lines", {"type": "integer"}, json.dumps("line one\nline two is a bit longer than the first one\n" * 3 + "x" * 100)),
    ("long-string-in-dict", {"type": "integer"}, json.dumps({"k": "word " * 30})),
    ("long-string-in-list", {"type": "integer"}, json.dumps(["word " * 30, "w\nx\ny"])),
    ("unicode-repr", {"type": "integer"}, json.dumps({"\u00e9t\u00e9": "\u00a0\u2028\u200b\x7f\x00\t\r\n\\\U0001F600\u4e2d", "q": "a'b", "qq": "a'b\"c"}, ensure_ascii=False)),
    ("float-reprs", {"type": "integer"}, "[1e16, 1e15, 1e-5, 0.0001, 1.5, -0.0, 123456789012345678, 1e22, 1.7976931348623157e308, 5e-324, 0.1, 100.0, 1234567.125, 12345678901234567.0]"),
    ("deep-schema-pformat", {"properties": {"a": {"properties": {"b": {"enum": ["x" * 30, "y" * 30, "z" * 30], "description": "d" * 80}}}}}, "{\"a\": {\"b\": \"w\"}}"),
]


# --- random cases, from a fixed seed so that the file is reproducible.
# Schemas are drawn from the keywords this package implements and kept
# only if the metaschema accepts them; additionalProperties is never a
# schema there, because Python walks those extras in set order, which
# changes from run to run.
RND = random.Random(20240501)
RANDOM_CASES = 400
RANDOM_VALUES = 60
KEYS = ["a", "b", "c", "ab", "B1"]
TYPES = ["array", "boolean", "integer", "null", "number", "object", "string"]
PATS = ["^a", "b$", "^[a-c]+$", "\\d", "^.{2}$", "^$"]
def scalar():
    return RND.choice([None, True, False, 0, 1, 2, -3, 1.0, 2.5, 0.5, "", "a", "ab", "abc", "b", "1", "30e4ce5e-bd36-4d0d-9a4e-b5a1c8d0e2a1"])
def rand_value(d=0):
    c = RND.randrange(10)
    if d > 3 or c < 5: return scalar()
    if c < 7: return [rand_value(d+1) for _ in range(RND.randrange(4))]
    return {RND.choice(KEYS): rand_value(d+1) for _ in range(RND.randrange(4))}
def rand_schema(d=0):
    if d > 3 or RND.random() < 0.15:
        return RND.choice([True, False, {}, {"type": RND.choice(TYPES)}])
    s = {}
    for _ in range(RND.randrange(1, 4)):
        k = RND.choice(["type", "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                        "minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "items", "prefixItems",
                        "contains", "properties", "properties", "patternProperties", "additionalProperties", "required",
                        "minProperties", "maxProperties", "allOf", "anyOf", "anyOf", "oneOf", "oneOf", "not", "if",
                        "multipleOf", "propertyNames", "dependentRequired", "dependentSchemas", "format"])
        if k == "type": s[k] = RND.choice(TYPES) if RND.random() < 0.7 else RND.sample(TYPES, RND.randrange(1, 3))
        elif k == "enum": s[k] = [scalar() for _ in range(RND.randrange(1, 4))]
        elif k == "const": s[k] = rand_value()
        elif k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"): s[k] = RND.choice([0, 1, 2, 0.5, -1])
        elif k in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"): s[k] = RND.randrange(0, 4)
        elif k == "pattern": s[k] = RND.choice(PATS)
        elif k == "uniqueItems": s[k] = RND.choice([True, False])
        elif k in ("items", "contains", "not", "propertyNames"): s[k] = rand_schema(d+1)
        elif k == "prefixItems": s[k] = [rand_schema(d+1) for _ in range(RND.randrange(1, 3))]
        elif k == "properties": s[k] = {RND.choice(KEYS): rand_schema(d+1) for _ in range(RND.randrange(1, 4))}
        elif k == "patternProperties": s[k] = {RND.choice(PATS): rand_schema(d+1) for _ in range(RND.randrange(1, 3))}
        elif k == "additionalProperties": s[k] = RND.choice([False, True])
        elif k == "required": s[k] = RND.sample(KEYS, RND.randrange(1, 3))
        elif k in ("allOf", "anyOf", "oneOf"): s[k] = [rand_schema(d+1) for _ in range(RND.randrange(1, 4))]
        elif k == "if":
            s[k] = rand_schema(d+1)
            if RND.random() < 0.7: s["then"] = rand_schema(d+1)
            if RND.random() < 0.7: s["else"] = rand_schema(d+1)
        elif k == "multipleOf": s[k] = RND.choice([2, 3, 0.5, 0.1])
        elif k == "dependentRequired": s[k] = {RND.choice(KEYS): RND.sample(KEYS, 2)}
        elif k == "dependentSchemas": s[k] = {RND.choice(KEYS): rand_schema(d+1)}
        elif k == "format": s[k] = "uuid"
    return s
WORDS = ["a", "bb", "word", "x"*40, "it's", "q\"", "\u00e9\u00e9", "\u4e2d\u6587", "\n", "  ", "\t", "line\r\n", "\u2028", "\x85", "\u3000", "\U0001F600", "\\"]
def words():
    return "".join(RND.choice(WORDS) + RND.choice(["", " ", "  "]) for _ in range(RND.randrange(0, 14)))
def nested(d=0):
    c = RND.randrange(10)
    if d > 3 or c < 4:
        return RND.choice([None, True, 1, -5, 10**20, 1.5, 1e20, 1e-9, words(), words(), words()])
    if c < 7:
        return [nested(d+1) for _ in range(RND.randrange(6))]
    return {words()[:RND.randrange(1, 30)]: nested(d+1) for _ in range(RND.randrange(6))}


def jtext(v):
    return v if isinstance(v, str) else json.dumps(v)


def main():
    placement = load_placement()
    schemas = collections.OrderedDict()
    cases = []
    for name, schema, instance in CASES:
        if isinstance(schema, str):
            key = schema
            schemas[key] = placement[key]
        else:
            key = "inline:" + name
            schemas[key] = json.dumps(schema)

        inst_text = jtext(instance)
        s = json.loads(schemas[key])
        inst = json.loads(inst_text)
        case = {"name": name, "schema": key, "instance": inst_text}
        try:
            jsonschema.validate(inst, s, format_checker=jsonschema.FormatChecker())
            case["valid"] = True
        except jsonschema.ValidationError as exc:
            case["valid"] = False
            case["message"] = exc.message
            case["error"] = str(exc)
        cases.append(case)

    random_cases = []
    while len(random_cases) < RANDOM_CASES:
        st = json.dumps(rand_schema())
        s = json.loads(st)
        try:
            jsonschema.Draft202012Validator.check_schema(s)
        except jsonschema.SchemaError:
            continue
        it = json.dumps(rand_value())
        inst = json.loads(it)
        case = {"name": "random-%d" % len(random_cases), "schema": "random", "schema_json": st, "instance": it}
        try:
            jsonschema.validate(inst, s, format_checker=jsonschema.FormatChecker())
            case["valid"] = True
        except jsonschema.ValidationError as exc:
            case["valid"] = False
            case["message"] = exc.message
            case["error"] = str(exc)
        random_cases.append(case)

    values = []
    for _, _, instance in CASES:
        v = json.loads(jtext(instance))
        values.append({"json": jtext(instance), "repr": repr(v),
                       "pformat": pprint.pformat(v, width=72)})

    for _ in range(RANDOM_VALUES):
        text = json.dumps(nested())
        v = json.loads(text)
        values.append({"json": text, "repr": repr(v),
                       "pformat": pprint.pformat(v, width=72)})

    with open(os.path.join(HERE, "golden.json"), "w") as fh:
        json.dump({"schemas": schemas, "cases": cases + random_cases, "values": values},
                  fh, indent=1, ensure_ascii=False)
        fh.write("\n")


if __name__ == "__main__":
    main()
