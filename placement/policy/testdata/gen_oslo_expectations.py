#!/usr/bin/python3
"""Regenerate oslo-policy-4.0.0.txt: the decisions of the real oslo.policy
4.0.0 (Debian bookworm python3-oslo.policy) over Placement 8.0.0's
registered defaults (python3-placement) for a grid of modes, credentials,
rules and targets. policy_test.go checks the Go engine against it.

    /usr/bin/python3 gen_oslo_expectations.py \
        .../shared/conformance/placement/open-policy.yaml > oslo-policy-4.0.0.txt

Columns: mode persona rule target allowed. Personas are defined here and
mirrored in policy_test.go.
"""
import os
import sys
import tempfile
import warnings

from oslo_config import cfg
from oslo_context import context as octx
from oslo_policy import policy as op
from placement import policies

warnings.filterwarnings('ignore')
OPEN = sys.argv[1]
if not os.path.isfile(OPEN):
    sys.exit('usage: gen_oslo_expectations.py OPEN_POLICY_YAML')
EMPTY = os.path.join(tempfile.mkdtemp(), 'none.yaml')
with open(EMPTY, 'w') as f:
    f.write('{}\n')


def enforcer(mode):
    conf = cfg.ConfigOpts()
    conf([], project='unisched-oracle')
    e = op.Enforcer(conf)
    scope = mode == 'secure_rbac'
    conf.set_override('enforce_scope', scope, 'oslo_policy')
    conf.set_override('enforce_new_defaults', scope, 'oslo_policy')
    e.policy_file = OPEN if mode == 'open' else EMPTY
    e.suppress_default_change_warnings = True
    e.suppress_deprecation_warnings = True
    e.register_defaults(policies.list_rules())
    e.load_rules()
    return e


PERSONAS = {
    'sysAdmin': dict(user_id='u', roles=['admin', 'member', 'reader'], system_scope='all'),
    'sysMember': dict(user_id='u', roles=['member', 'reader'], system_scope='all'),
    'sysReader': dict(user_id='u', roles=['reader'], system_scope='all'),
    'projAdmin': dict(user_id='u', roles=['admin', 'member', 'reader'], project_id='p1'),
    'projMember': dict(user_id='u', roles=['member', 'reader'], project_id='p1'),
    'projReader': dict(user_id='u', roles=['reader'], project_id='p1'),
    'legacyAdmin': dict(user_id='admin', roles=['admin'], project_id='admin'),
    'upperAdmin': dict(user_id='u', roles=['ADMIN'], project_id='p1'),
    'noRoles': dict(user_id='u', roles=[], project_id='p1'),
    'sysNoRoles': dict(user_id='u', roles=[], system_scope='all'),
    'domainAdmin': dict(user_id='u', roles=['admin', 'reader'], domain_id='d1'),
    'sysOtherAdmin': dict(user_id='u', roles=['admin', 'reader'], system_scope='other'),
    'readerNoProject': dict(user_id='u', roles=['reader']),
}
TARGETS = {'p1': {'project_id': 'p1'}, 'p2': {'project_id': 'p2'}, 'none': {'project_id': None}}


def main():
    rules = [r.name for r in policies.list_rules() if r.name.startswith('placement:')]
    for mode in ['legacy', 'secure_rbac', 'open']:
        e = enforcer(mode)
        for pname, p in PERSONAS.items():
            ctx = octx.RequestContext(**p)
            for rule in rules:
                tnames = TARGETS if rule == 'placement:usages' else {'p1': TARGETS['p1']}
                for tname, t in tnames.items():
                    try:
                        ok = bool(e.authorize(rule, t, ctx, do_raise=True))
                    except (op.PolicyNotAuthorized, op.InvalidScope):
                        ok = False
                    sys.stdout.write('%s %s %s %s %s\n' % (mode, pname, rule, tname, ok))


if __name__ == '__main__':
    main()
