#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of moto_server, for the AWS provider's tests.

Python 3 standard library only. It listens on 127.0.0.1, forwards every request to the moto URL
it is given (which must be on 127.0.0.0/8: it never contacts anything else), counts the requests
by service and Action, and answers scripted ones itself with the error AWS would send.

    fault_proxy.py --upstream http://127.0.0.1:5000 [--port 0] [--page-size N] [--exit-on-stdin-eof]

The first line on stdout is `listening <port>` (with --port 0 the system picks the port).
With --exit-on-stdin-eof the proxy exits when its standard input closes, so a test that dies
without cleaning up does not leave it behind.

Control API, on the same port:

    POST /__proxy/rules        JSON list of rules; replaces the current rules
    GET  /__proxy/rules        the current rules, each with `remaining` (how often it still fires)
    GET  /__proxy/stats        counts and the request log (see Stats.snapshot)
    POST /__proxy/reset-stats  zero the counts and the log (the rules stay)
    POST /__proxy/paging       {"page_size": N} (N >= 1) or {"page_size": null} (whole answers)
    GET  /__proxy/paging       {"page_size": ..., "pages_served": {Action: pages}}
    POST /__proxy/hosts        map an instance (by its Name tag) to a test host; see Hosts
    GET  /__proxy/hosts        the mappings, the instance IDs seen for them, rewrites done
    POST /__proxy/load-balancers  give a load balancer (by name) a DNSName; see Hosts

Paging, as AWS pages and moto mostly does not: with a page size, the answer of every paged
Describe* in PAGED (instances, volumes, security groups and their rules, subnets, VPCs, images,
instance types; ELBv2 load balancers, target groups, listeners) is cut to N items with a
NextToken (EC2 `nextToken`) or NextMarker (ELBv2) of the proxy's own; a request that brings such a
token back is served the next page from the first answer (not forwarded; counted in the stats
like any request). Each page served is counted in `pages_served`.

Hosts, for end-to-end tests (moto boots no VM): the test tells the proxy which instance stands
for which host it made (a local-lab network namespace with sshd), by the instance's Name tag:

    POST /__proxy/hosts  {"name": "e2e-aws-1", "private_ip": "10.213.231.11",
                          "public_ip": "10.213.231.11", "private_dns": "10.213.231.11",
                          "public_dns": "10.213.231.11", "console": "cloud-init's log"}
    POST /__proxy/hosts  {"name": "e2e-aws-1", "remove": true}

  Every field but `name` is optional. private_ip and public_ip must be on 127.0.0.0/8 or
  10.0.0.0/8 (the test's own namespaces), so no mapping can lead the tool off the machine; the
  DNS fields are free text (the tool does not look instance names up; the IP literal is safest).
  In every DescribeInstances and RunInstances answer, an instance whose Name tag is mapped gets
  the mapped addresses in place of moto's, wherever the answer carries them (the instance and
  its network interfaces): private_ip in privateIpAddress, public_ip in ipAddress and publicIp,
  private_dns in privateDnsName, public_dns in dnsName and publicDnsName. Elements moto left out
  are not added. The rewrite happens before paging; moto's own state is never changed.
  The proxy remembers the instance IDs it saw with a mapped Name; GetConsoleOutput for such an
  ID is answered with `console` (base64, as EC2 does), unless a per-ID log (/__proxy/console) or
  a fault rule comes first. Terminated instances keep their tags in moto, so their addresses are
  rewritten too (AWS shows no addresses for them; the tool ignores them).

  An NLB's DNSName is a name under elb.amazonaws.com that the tool looks up (status) and hands
  to the nodes (lb_address); a test whose NLB stands for a lab host (an L4 forwarder it runs
  there) gives it that host's address, which no resolver is asked about:

    POST /__proxy/load-balancers  {"name": "e2e-awsnlb-nlb", "dns_name": "10.213.232.10"}
                                  ({"name": …, "remove": true} drops it)

  `dns_name` must be an IPv4 literal on 127.0.0.0/8 or 10.0.0.0/8. It replaces DNSName in
  the ELBv2 DescribeLoadBalancers and CreateLoadBalancer answers for that LoadBalancerName.
  GET /__proxy/hosts lists these under "load_balancers".

A rule:

    {"action": "DeleteSecurityGroup", "times": 2, "fault": "DependencyViolation", "delay_ms": 0}
    {"action": "*", "delay_ms": 50}                      # pure latency, every request, no limit

  action    Action name or "*" (required).
  service   optional: "ec2" or "elasticloadbalancing" (the SigV4 credential scope's service).
  fault     optional; without it the rule only adds latency. Known faults:
              DependencyViolation        400, code DependencyViolation
              Throttling                 EC2: 503 RequestLimitExceeded; ELBv2: 400 Throttling
                                         (the codes AWS sends; both are in the SDK's list of
                                         throttling codes)
              InternalError500           EC2: 500 InternalError; ELBv2: 500 InternalFailure
              InvalidInstanceID.NotFound 400, code InvalidInstanceID.NotFound
              reset                      close the connection (TCP RST) without any reply
              hang                       read the request, then hold the connection open and
                                         never answer (a middlebox that dropped the flow's
                                         state): until the client gives up and closes it, or
                                         `hold_ms` (default 600000) has passed
            Any other fault name is sent as that error code and needs "status".
  status, message, code   optional overrides of the error reply.
  times     how many requests the rule acts on, then it stops; default 1 for a fault rule,
            unlimited for a latency-only rule.
  delay_ms  sleep before answering (or before forwarding, for a latency-only rule).
  every     optional N >= 1: the rule acts only on every Nth request it matches and no earlier
            fault rule took (the Nth, 2Nth, ...), e.g. {"action": "*", "fault": "hang", "every": 5, "times": 4} leaves 1 call in
            5 unanswered, 4 times in all: a fraction of the calls, deterministically.

For each request the first fault rule that matches and has times left fires; every matching
latency-only rule adds its delay. Faulted requests are not forwarded to moto.

ClientToken, as EC2 checks it (moto does not): a forwarded request whose ClientToken was
forwarded before for the same Action with other parameters is answered 400
IdempotentParameterMismatch and not forwarded (recorded in the stats as that fault).
"""

import argparse
import http.client
import itertools
import re
import ipaddress
import json
import os
import select
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MUTATING_PREFIXES = (
    "Create", "Delete", "Run", "Terminate", "Authorize", "Revoke", "Register", "Deregister",
    "Import", "Modify", "Add", "Remove", "Set",
    # Also mutating, though not in the first list: Elastic IPs, attachments, instance power.
    "Allocate", "Release", "Associate", "Disassociate", "Attach", "Detach", "Start", "Stop",
    "Reboot", "Replace", "Update",
)

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "content-length", "expect",
}

EC2 = "ec2"
ELBV2 = "elasticloadbalancing"

# Paged Describe* calls: Action -> (service, the list element, the token element in answers, the
# token parameter in requests).
PAGED = {
    "DescribeInstances": (EC2, "reservationSet", "nextToken", "NextToken"),
    "DescribeVolumes": (EC2, "volumeSet", "nextToken", "NextToken"),
    "DescribeSecurityGroups": (EC2, "securityGroupInfo", "nextToken", "NextToken"),
    "DescribeSecurityGroupRules": (EC2, "securityGroupRuleSet", "nextToken", "NextToken"),
    "DescribeSubnets": (EC2, "subnetSet", "nextToken", "NextToken"),
    "DescribeVpcs": (EC2, "vpcSet", "nextToken", "NextToken"),
    "DescribeImages": (EC2, "imagesSet", "nextToken", "NextToken"),
    "DescribeInstanceTypes": (EC2, "instanceTypeSet", "nextToken", "NextToken"),
    "DescribeLoadBalancers": (ELBV2, "LoadBalancers", "NextMarker", "Marker"),
    "DescribeTargetGroups": (ELBV2, "TargetGroups", "NextMarker", "Marker"),
    "DescribeListeners": (ELBV2, "Listeners", "NextMarker", "Marker"),
}

PAGE_TOKEN_PREFIX = "fault-proxy-page-"

XML_TAG = re.compile(r"<(/?)([A-Za-z_][\w.:-]*)(?:\s[^>]*?)?(/?)>")


def split_list(xml, list_tag):
    """(head, items, tail) around the children of the first `<list_tag>` element of `xml`, or None
    when there is no such element or it is empty (`<list_tag/>`)."""
    depth = 0
    list_depth = None
    head_end = None
    items = []
    item_start = None
    for m in XML_TAG.finditer(xml):
        closing, name, selfclosing = m.group(1) == "/", m.group(2), m.group(3) == "/"
        if list_depth is None:
            if not closing and not selfclosing and name == list_tag:
                list_depth = depth
                head_end = m.end()
            if not closing and not selfclosing:
                depth += 1
            elif closing:
                depth -= 1
            continue
        if closing:
            depth -= 1
            if depth == list_depth:  # the list's own closing tag
                return xml[:head_end], items, xml[m.start():]
            if depth == list_depth + 1 and item_start is not None:
                items.append(xml[item_start:m.end()])
                item_start = None
        elif selfclosing:
            if depth == list_depth + 1:
                items.append(xml[m.start():m.end()])
        else:
            if depth == list_depth + 1:
                item_start = m.start()
            depth += 1
    return None


def page_of(head, items, tail, start, size, token_elem, token):
    """The answer holding items[start:start+size], with `token` (when more follow) right after
    the list, where AWS puts it; any token element of the original answer is dropped."""
    drop = re.compile(rf"<{token_elem}\s*/>|<{token_elem}>[^<]*</{token_elem}>")
    head, tail = drop.sub("", head), drop.sub("", tail)
    close = tail.index(">") + 1  # the list's closing tag
    more = f"<{token_elem}>{token}</{token_elem}>" if token else ""
    return head + "".join(items[start:start + size]) + tail[:close] + more + tail[close:]


KNOWN_FAULTS = {
    "DependencyViolation", "Throttling", "InternalError500", "InvalidInstanceID.NotFound", "reset",
    "hang",
}


def is_mutating(action):
    return bool(action) and action.startswith(MUTATING_PREFIXES)


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def service_of(headers):
    """The service of the SigV4 credential scope: Credential=KEY/DATE/REGION/SERVICE/aws4_request."""
    auth = headers.get("Authorization") or ""
    marker = "Credential="
    i = auth.find(marker)
    if i < 0:
        return None
    scope = auth[i + len(marker):].split(",")[0].strip().split("/")
    return scope[3] if len(scope) >= 5 else None


def params_of(path, headers, body):
    """The query parameters of the request: the query string, then a form-encoded body."""
    params = {}
    query = urllib.parse.urlsplit(path).query
    for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
        params.setdefault(k, v)
    ctype = (headers.get("Content-Type") or "").lower()
    if body and ("x-www-form-urlencoded" in ctype or (not ctype and b"Action=" in body)):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True):
            params[k] = v
    return params


def validate_rules(rules):
    if not isinstance(rules, list):
        raise ValueError("rules must be a JSON list")
    out = []
    for i, r in enumerate(rules):
        if not isinstance(r, dict):
            raise ValueError(f"rule {i} is not an object")
        action = r.get("action")
        if not isinstance(action, str) or not action:
            raise ValueError(f"rule {i}: `action` (a name or \"*\") is required")
        fault = r.get("fault")
        if fault is not None:
            if not isinstance(fault, str):
                raise ValueError(f"rule {i}: `fault` must be a string")
            if fault not in KNOWN_FAULTS and not isinstance(r.get("status"), int):
                raise ValueError(
                    f"rule {i}: unknown fault {fault!r}; known: {sorted(KNOWN_FAULTS)}; "
                    "any other code needs an explicit `status`")
        times = r.get("times", 1 if fault is not None else None)
        if times is not None and (not isinstance(times, int) or times < 0):
            raise ValueError(f"rule {i}: `times` must be a non-negative integer")
        delay = r.get("delay_ms", 0)
        if not isinstance(delay, (int, float)) or delay < 0:
            raise ValueError(f"rule {i}: `delay_ms` must be a non-negative number")
        every = r.get("every", 1)
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"rule {i}: `every` must be an integer >= 1")
        hold = r.get("hold_ms", 600000)
        if not isinstance(hold, (int, float)) or hold < 0:
            raise ValueError(f"rule {i}: `hold_ms` must be a non-negative number")
        service = r.get("service")
        if service is not None and service not in (EC2, ELBV2):
            raise ValueError(f"rule {i}: `service` must be {EC2!r} or {ELBV2!r}")
        rule = dict(r)
        rule["remaining"] = times  # None = unlimited
        rule["fired"] = 0
        rule["matched"] = 0
        out.append(rule)
    return out


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.client_tokens = {}  # (service, Action, ClientToken) -> the parameters first sent
        self.page_size = None  # None: answers pass whole
        self.pages = {}  # page token -> (head, items, tail, next start, size, token element)
        self.page_ids = itertools.count(1)
        self.pages_served = {}
        self.reset_stats()

    def reset_stats(self):
        self.epoch = time.monotonic()
        self.total = 0
        self.by_action = {}
        self.by_service = {}
        self.mutating = 0
        self.mutating_by_action = {}
        self.faults = 0
        self.faults_by_action = {}
        self.log = []

    def token_mismatch(self, service, action, params):
        """The IdempotentParameterMismatch fault when `params` reuse a ClientToken sent before
        with other parameters, else None (and the token is remembered). Caller holds the lock."""
        token = params.get("ClientToken")
        if not token:
            return None
        seen = tuple(sorted(params.items()))
        if self.client_tokens.setdefault((service, action, token), seen) == seen:
            return None
        return {"fault": "IdempotentParameterMismatch", "status": 400,
                "message": f"Client token {token!r} was used with other parameters"}

    def decide(self, service, action, params):
        """Count the request and pick its fault and delay. Returns (fault rule or None, delay s)."""
        with self.lock:
            fault_rule = None
            delay_ms = 0.0
            for rule in self.rules:
                if rule["action"] != "*" and rule["action"] != action:
                    continue
                if rule.get("service") is not None and rule["service"] != service:
                    continue
                if rule["remaining"] is not None and rule["remaining"] <= 0:
                    continue
                if rule.get("fault") is not None and fault_rule is not None:
                    continue  # an earlier fault rule has this request
                rule["matched"] += 1
                if rule["matched"] % rule.get("every", 1) != 0:
                    continue
                if rule.get("fault") is None:
                    delay_ms += float(rule.get("delay_ms", 0))
                    if rule["remaining"] is not None:
                        rule["remaining"] -= 1
                    rule["fired"] += 1
                elif fault_rule is None:
                    fault_rule = rule
                    delay_ms += float(rule.get("delay_ms", 0))
                    if rule["remaining"] is not None:
                        rule["remaining"] -= 1
                    rule["fired"] += 1

            if fault_rule is None:
                fault_rule = self.token_mismatch(service, action, params)
            self.total += 1
            name = action or "(none)"
            self.by_action[name] = self.by_action.get(name, 0) + 1
            svc = service or "(none)"
            self.by_service[svc] = self.by_service.get(svc, 0) + 1
            mutating = is_mutating(action)
            if mutating:
                self.mutating += 1
                self.mutating_by_action[name] = self.mutating_by_action.get(name, 0) + 1
            fault = fault_rule["fault"] if fault_rule else None
            if fault:
                self.faults += 1
                self.faults_by_action[name] = self.faults_by_action.get(name, 0) + 1
            self.log.append({
                "t": round(time.monotonic() - self.epoch, 6),
                "service": service,
                "action": action,
                "mutating": mutating,
                "fault": fault,
            })
            return (dict(fault_rule) if fault_rule else None), delay_ms / 1000.0

    def snapshot(self):
        with self.lock:
            return {
                "total": self.total,
                "by_action": dict(self.by_action),
                "by_service": dict(self.by_service),
                "mutating": self.mutating,
                "mutating_by_action": dict(self.mutating_by_action),
                "faults_injected": self.faults,
                "faults_by_action": dict(self.faults_by_action),
                "log": list(self.log),
            }

    def page_request(self, service, action, params):
        """For a paged call that brings back one of the proxy's tokens: (status, body) of the next
        page, served from the first answer; else None (the request goes to moto)."""
        spec = PAGED.get(action)
        if spec is None or spec[0] != service:
            return None
        token = params.get(spec[3]) or ""
        if not token.startswith(PAGE_TOKEN_PREFIX):
            return None
        with self.lock:
            cut = self.pages.pop(token, None)
        if cut is None:
            code = "InvalidNextToken" if service == EC2 else "InvalidMarker"
            return error_reply({"fault": code, "status": 400, "message":
                                f"unknown or spent token {token!r}"}, service, params)[:2]
        return 200, self.serve_page(action, cut).encode("utf-8")

    def serve_page(self, action, cut):
        head, items, tail, start, size, token_elem = cut
        token = None
        with self.lock:
            if start + size < len(items):
                token = f"{PAGE_TOKEN_PREFIX}{next(self.page_ids)}"
                self.pages[token] = (head, items, tail, start + size, size, token_elem)
            self.pages_served[action] = self.pages_served.get(action, 0) + 1
        return page_of(head, items, tail, start, size, token_elem, token)

    def paginate(self, service, action, status, data):
        """The first page of a whole answer from moto (when paging is on), else `data`."""
        spec = PAGED.get(action)
        size = self.page_size
        if size is None or status != 200 or spec is None or spec[0] != service:
            return data
        try:
            xml = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        split = split_list(xml, spec[1])
        if split is None:
            return data
        head, items, tail = split
        return self.serve_page(action, (head, items, tail, 0, size, spec[2])).encode("utf-8")

    def rules_snapshot(self):
        with self.lock:
            return [dict(r) for r in self.rules]


def error_reply(rule, service, params):
    """(status, body bytes) of the AWS error for a fault rule."""
    fault = rule["fault"]
    sender = True
    if fault == "DependencyViolation":
        status, code = 400, "DependencyViolation"
        res = params.get("GroupId") or params.get("GroupName") or params.get("VpcId") or "resource"
        message = f"resource {res} has a dependent object"
    elif fault == "Throttling":
        if service == ELBV2:
            status, code, message = 400, "Throttling", "Rate exceeded"
        else:
            status, code, message = 503, "RequestLimitExceeded", "Request limit exceeded."
    elif fault == "InternalError500":
        sender = False
        if service == ELBV2:
            status, code = 500, "InternalFailure"
            message = "The request processing has failed because of an unknown error, exception or failure."
        else:
            status, code = 500, "InternalError"
            message = "An internal error has occurred"
    elif fault == "InvalidInstanceID.NotFound":
        status, code = 400, "InvalidInstanceID.NotFound"
        ids = [v for k, v in sorted(params.items()) if k.startswith("InstanceId")]
        message = f"The instance ID '{', '.join(ids) or 'i-00000000000000000'}' does not exist"
    else:
        status, code = int(rule["status"]), fault
        message = "injected by fault_proxy"
        sender = status < 500
    status = int(rule.get("status", status))
    code = rule.get("code", code)
    message = rule.get("message", message)
    request_id = str(uuid.uuid4())
    if service == ELBV2:
        body = (
            '<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
            f"<Error><Type>{'Sender' if sender else 'Receiver'}</Type>"
            f"<Code>{xml_escape(code)}</Code><Message>{xml_escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{xml_escape(code)}</Code>"
            f"<Message>{xml_escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    return status, body.encode("utf-8"), request_id


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle keep-alive connection is dropped after this long

    def version_string(self):
        return "fault-proxy"

    def log_message(self, fmt, *args):  # quiet: the stats are the log
        pass

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, body, ctype, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, status, value):
        self.reply(status, json.dumps(value).encode("utf-8"), "application/json")

    def handle_any(self):
        body = self.read_body()
        if self.path.startswith("/__proxy/"):
            return self.control(body)
        state = self.server.state
        service = service_of(self.headers)
        params = params_of(self.path, self.headers, body)
        action = params.get("Action")
        rule, delay = state.decide(service, action, params)
        if delay > 0:
            time.sleep(delay)
        if rule is None and serve_console(self, action, params):
            return
        if rule is not None:
            if rule["fault"] == "reset":
                self.reset_connection()
                return
            if rule["fault"] == "hang":
                self.hold_connection(float(rule.get("hold_ms", 600000)) / 1000.0)
                return
            status, err, request_id = error_reply(rule, service, params)
            return self.reply(status, err, "text/xml",
                              [("x-amzn-RequestId", request_id)])
        page = state.page_request(service, action, params)
        if page is not None:
            return self.reply(page[0], page[1], "text/xml",
                              [("x-amzn-RequestId", str(uuid.uuid4()))])
        self.forward(body, service, action)

    def reset_connection(self):
        # SO_LINGER with a zero timeout: close() sends RST, not FIN, and no reply at all.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def hold_connection(self, seconds):
        # No reply at all: wait until the client closes its end (recv returns b"") or the hold
        # ends, then close ours.
        self.close_connection = True
        deadline = time.monotonic() + seconds
        conn = self.connection
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([conn], [], [], 0.2)
                if ready and not conn.recv(4096):
                    break
        except OSError:
            pass

    def forward(self, body, service=None, action=None):
        host, port = self.server.upstream
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            conn.request(self.command, self.path, body=body if body or self.command in
                         ("POST", "PUT", "PATCH") else None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP
                           and k.lower() not in ("server", "date")]
        except OSError as e:
            msg = f"fault_proxy: upstream {host}:{port} failed: {e}\n".encode("utf-8")
            return self.reply(502, msg, "text/plain")
        finally:
            conn.close()
        if status == 200 and service == EC2 and action in REWRITTEN_ACTIONS:
            data = rewrite_instances(data)
        if status == 200 and service == ELBV2 and action in LB_REWRITTEN_ACTIONS:
            data = rewrite_load_balancers(data)
        data = self.server.state.paginate(service, action, status, data)
        self.send_response(status)
        for k, v in out_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def control(self, body):
        state = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        if path == "/__proxy/console":
            return console_control(self, body)
        if path == "/__proxy/hosts":
            return hosts_control(self, body)
        if path == "/__proxy/load-balancers" and self.command == "POST":
            return load_balancers_control(self, body)
        if path == "/__proxy/rules" and self.command == "POST":
            try:
                rules = validate_rules(json.loads(body.decode("utf-8") or "null"))
            except (ValueError, UnicodeDecodeError) as e:
                return self.reply_json(400, {"error": str(e)})
            with state.lock:
                state.rules = rules
            return self.reply_json(200, {"ok": True, "rules": len(rules)})
        if path == "/__proxy/rules" and self.command == "GET":
            return self.reply_json(200, state.rules_snapshot())
        if path == "/__proxy/stats" and self.command == "GET":
            return self.reply_json(200, state.snapshot())
        if path == "/__proxy/paging" and self.command == "POST":
            try:
                size = json.loads(body.decode("utf-8") or "{}").get("page_size")
            except (ValueError, UnicodeDecodeError, AttributeError) as e:
                return self.reply_json(400, {"error": f"paging: {e}"})
            if size is not None and (not isinstance(size, int) or size < 1):
                return self.reply_json(400, {"error": "page_size must be an integer >= 1 or null"})
            with state.lock:
                state.page_size = size
            return self.reply_json(200, {"ok": True, "page_size": size})
        if path == "/__proxy/paging" and self.command == "GET":
            with state.lock:
                return self.reply_json(200, {"page_size": state.page_size,
                                             "pages_served": dict(state.pages_served)})
        if path == "/__proxy/reset-stats" and self.command == "POST":
            with state.lock:
                state.reset_stats()
            return self.reply_json(200, {"ok": True})
        return self.reply_json(404, {"error": f"no control endpoint {self.command} {path}"})


# Console output (issue 10, item 4). moto's GetConsoleOutput answers the same canned kernel log
# for every instance; a test that needs cloud-init's host key block sets an instance's log here:
#
#     POST /__proxy/console  {"instance_id": "i-…", "output": "text"}  (or "output": null: unset)
#
# and GetConsoleOutput for that instance is answered by the proxy (base64, as EC2 does) unless a
# fault rule fires first; other instances go to moto.
CONSOLE_LOGS = {}
CONSOLE_LOCK = threading.Lock()


def console_control(handler, body):
    try:
        req = json.loads(body.decode("utf-8") or "{}")
        instance, output = req["instance_id"], req.get("output")
        if not isinstance(instance, str) or not (output is None or isinstance(output, str)):
            raise ValueError("instance_id must be a string, output a string or null")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as e:
        return handler.reply_json(400, {"error": f"console: {e}"})
    with CONSOLE_LOCK:
        if output is None:
            CONSOLE_LOGS.pop(instance, None)
        else:
            CONSOLE_LOGS[instance] = output
    return handler.reply_json(200, {"ok": True})


def serve_console(handler, action, params):
    """Answers GetConsoleOutput for an instance with a log set; False: not ours to answer."""
    if action != "GetConsoleOutput":
        return False
    instance = params.get("InstanceId", "")
    with CONSOLE_LOCK:
        output = CONSOLE_LOGS.get(instance)
    if output is None:
        output = host_console(instance)
    if output is None:
        return False
    import base64
    request_id = str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        f"<requestId>{request_id}</requestId><instanceId>{xml_escape(instance)}</instanceId>"
        f"<timestamp>{stamp}</timestamp>"
        f"<output>{base64.b64encode(output.encode('utf-8')).decode('ascii')}</output>"
        "</GetConsoleOutputResponse>"
    )
    handler.reply(200, body.encode("utf-8"), "text/xml", [("x-amzn-RequestId", request_id)])
    return True


# Hosts (see the docstring): Name tag -> mapping; instance ID -> Name tag, learned from answers.
HOSTS = {}
HOST_IDS = {}
HOSTS_REWRITES = {"instances": 0}
HOSTS_LOCK = threading.Lock()
HOST_FIELDS = ("private_ip", "public_ip", "private_dns", "public_dns", "console")
REWRITTEN_ACTIONS = ("DescribeInstances", "RunInstances")
# Mapping field -> the answer elements that carry it.
HOST_ELEMENTS = {
    "private_ip": ("privateIpAddress",),
    "public_ip": ("ipAddress", "publicIp"),
    "private_dns": ("privateDnsName",),
    "public_dns": ("dnsName", "publicDnsName"),
}
NAME_TAG = re.compile(r"<item>\s*<key>Name</key>\s*<value>([^<]*)</value>\s*</item>")
INSTANCE_ID = re.compile(r"<instanceId>([^<]*)</instanceId>")


def xml_unescape(s):
    return (s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&apos;", "'").replace("&amp;", "&"))


# Where a test's hosts can be: loopback, or the 10.0.0.0/8 the test's own network namespaces
# use (the local lab's 10.213.<n>.0/24). Anything else could send the tool's traffic off the
# machine, so a mapping to it is refused.
TEST_HOST_NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8"))


def check_test_host(field, value):
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"`{field}` {value!r} is not an IP address")
    if addr.version != 4 or not any(addr in net for net in TEST_HOST_NETS):
        raise ValueError(f"`{field}` {value} is not on 127.0.0.0/8 or 10.0.0.0/8 (test hosts only)")


def hosts_control(handler, body):
    if handler.command == "GET":
        with HOSTS_LOCK:
            return handler.reply_json(200, {
                "hosts": {k: {f: v for f, v in m.items() if f != "console"}
                          for k, m in HOSTS.items()},
                "consoles": sorted(k for k, m in HOSTS.items() if m.get("console") is not None),
                "instance_ids": dict(HOST_IDS),
                "load_balancers": dict(LB_DNS),
                "rewrites": dict(HOSTS_REWRITES),
            })
    if handler.command != "POST":
        return handler.reply_json(405, {"error": "hosts: GET or POST"})
    try:
        req = json.loads(body.decode("utf-8") or "{}")
        if not isinstance(req, dict):
            raise ValueError("a JSON object is expected")
        name = req.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("`name` (the instance's Name tag) is required")
        unknown = set(req) - set(HOST_FIELDS) - {"name", "remove"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; known: {list(HOST_FIELDS)}")
        mapping = {}
        for f in HOST_FIELDS:
            v = req.get(f)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"`{f}` must be a string")
            if v is not None:
                mapping[f] = v
        for f in ("private_ip", "public_ip"):
            if f in mapping:
                check_test_host(f, mapping[f])
    except (ValueError, UnicodeDecodeError) as e:
        return handler.reply_json(400, {"error": f"hosts: {e}"})
    with HOSTS_LOCK:
        if req.get("remove"):
            HOSTS.pop(name, None)
        else:
            HOSTS[name] = mapping
    return handler.reply_json(200, {"ok": True})


def rewrite_instance(item):
    """One instance item of an answer with its mapping's addresses, or as it was."""
    tags = NAME_TAG.search(item)
    if tags is None:
        return item
    name = xml_unescape(tags.group(1))
    with HOSTS_LOCK:
        mapping = HOSTS.get(name)
        if mapping is None:
            return item
        ident = INSTANCE_ID.search(item)
        if ident:
            HOST_IDS[ident.group(1)] = name
        HOSTS_REWRITES["instances"] += 1
    for field, elements in HOST_ELEMENTS.items():
        value = mapping.get(field)
        if value is None:
            continue
        for elem in elements:
            item = re.sub(rf"<{elem}>[^<]*</{elem}>", f"<{elem}>{xml_escape(value)}</{elem}>",
                          item)
    return item


def rewrite_instances(data):
    """An EC2 answer with every mapped instance of its instancesSet elements rewritten."""
    with HOSTS_LOCK:
        if not HOSTS:
            return data
    try:
        xml = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    out = []
    rest = xml
    while True:
        split = split_list(rest, "instancesSet")
        if split is None:
            out.append(rest)
            break
        head, items, tail = split
        close = tail.index(">") + 1  # the list's closing tag
        out.append(head + "".join(rewrite_instance(i) for i in items) + tail[:close])
        rest = tail[close:]
    return "".join(out).encode("utf-8")


LB_DNS = {}  # LoadBalancerName -> DNSName
LB_REWRITTEN_ACTIONS = ("DescribeLoadBalancers", "CreateLoadBalancer")
LB_NAME = re.compile(r"<LoadBalancerName>([^<]*)</LoadBalancerName>")


def load_balancers_control(handler, body):
    try:
        req = json.loads(body.decode("utf-8") or "{}")
        if not isinstance(req, dict):
            raise ValueError("a JSON object is expected")
        name, dns = req.get("name"), req.get("dns_name")
        if not isinstance(name, str) or not name:
            raise ValueError("`name` (the LoadBalancerName) is required")
        if not req.get("remove"):
            if not isinstance(dns, str):
                raise ValueError("`dns_name` (an IPv4 literal) is required")
            # Never a name: the tool would look it up on this machine's resolver.
            check_test_host("dns_name", dns)
    except (ValueError, UnicodeDecodeError) as e:
        return handler.reply_json(400, {"error": f"load-balancers: {e}"})
    with HOSTS_LOCK:
        if req.get("remove"):
            LB_DNS.pop(name, None)
        else:
            LB_DNS[name] = dns
    return handler.reply_json(200, {"ok": True})


def rewrite_load_balancers(data):
    """An ELBv2 answer with each mapped load balancer's DNSName replaced."""
    with HOSTS_LOCK:
        if not LB_DNS:
            return data
        names = dict(LB_DNS)
    try:
        xml = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    split = split_list(xml, "LoadBalancers")
    if split is None:
        return data
    head, items, tail = split
    out = []
    for item in items:
        m = LB_NAME.search(item)
        dns = names.get(xml_unescape(m.group(1))) if m else None
        if dns is not None:
            item = re.sub(r"<DNSName>[^<]*</DNSName>", f"<DNSName>{xml_escape(dns)}</DNSName>",
                          item)
            with HOSTS_LOCK:
                HOSTS_REWRITES["load_balancers"] = HOSTS_REWRITES.get("load_balancers", 0) + 1
        out.append(item)
    return (head + "".join(out) + tail).encode("utf-8")


def host_console(instance):
    """The console log of the host an instance ID was seen standing for, or None."""
    with HOSTS_LOCK:
        name = HOST_IDS.get(instance)
        mapping = HOSTS.get(name) if name is not None else None
        return mapping.get("console") if mapping else None


def loopback_upstream(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"upstream must be http://127.x.y.z:PORT, not {url!r}")
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"upstream host must be a loopback address, not {parts.hostname!r}")
    if addr.version != 4 or not addr.is_loopback:
        raise ValueError(f"upstream host must be on 127.0.0.0/8, not {host}")
    return host, parts.port


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="moto URL, http://127.0.0.1:PORT")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    ap.add_argument("--rules", help="initial rules, a JSON list")
    ap.add_argument("--page-size", type=int, default=None,
                    help="cut paged Describe* answers into pages of N items (see Paging)")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when standard input closes (the parent went away)")
    args = ap.parse_args()
    try:
        upstream = loopback_upstream(args.upstream)
        rules = validate_rules(json.loads(args.rules)) if args.rules else []
    except ValueError as e:
        print(f"fault_proxy: {e}", file=sys.stderr)
        return 2

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.upstream = upstream
    server.state = State()
    server.state.rules = rules
    if args.page_size is not None:
        if args.page_size < 1:
            print("fault_proxy: --page-size must be >= 1", file=sys.stderr)
            return 2
        server.state.page_size = args.page_size

    if args.exit_on_stdin_eof:
        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch_stdin, daemon=True).start()

    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
