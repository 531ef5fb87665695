"""Paste filter for a Keystone-less nova-api (a stand-in for keystonemiddleware's token).

nova's noauth2 middleware builds the request context from ``X-Auth-Token:
user[:project]`` but leaves ``context.auth_token`` empty; the first call
nova-api makes to Glance with the user's context (``POST /servers`` reads the
image) then fails in keystoneauth ("No valid authentication is available",
HTTP 500). This filter runs right after noauth2 and copies the caller's token
into the context, so the Glance and Neutron clients forward it. The harness
inserts it into its copy of /etc/nova/api-paste.ini:

    noauth2 = ... noauth2 unischedtoken osapi_compute_app_v21
    [filter:unischedtoken]
    paste.filter_factory = nova_token_standin:filter_factory

(The idea comes from the shared lab's labauth.py.)
"""
import webob.dec


class TokenPassthrough(object):
    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        ctx = req.environ.get('nova.context')
        if ctx is not None and not getattr(ctx, 'auth_token', None):
            ctx.auth_token = req.headers.get('X-Auth-Token')
        return req.get_response(self.app)


def filter_factory(global_conf, **local_conf):
    return TokenPassthrough
