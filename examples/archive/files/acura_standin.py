#!/usr/bin/env python3
"""STAND-IN library of the acura-ha stand-in archive (not Hystax's, not Kubernetes).

On each node it runs REAL etcd (Debian's etcd-server, 3.4): the control-plane etcd (a v3
cluster with TLS, one member per node) and Acura's store (a single v2-enabled etcd on the first
node). The `kubectl` and `kubeadm` stand-ins and the stand-in playbooks use it.

Everything lives in the node's home (the container paths of a real cluster are mapped there):

  ~/.acura-standin/node.json           this node: name, address, lb_address
  ~/.acura-standin/pki/etcd/           stands for the etcd pod's /etc/kubernetes/pki/etcd/
  ~/.acura-standin/etcd/               control-plane member: data/, etcd.log, etcd.pid
  ~/.acura-standin/apiserver.{pid,log} the stand-in "apiserver" on <address>:6443
  ~/.acura-standin/acura-store/        Acura's store (first node): data/, etcd.log, etcd.pid

Ports: control-plane etcd client https://<address>:2379, peer https://<address>:2380; stand-in
apiserver <address>:6443; Acura's store http://<address>:2479 (peer 2480).

Keys in the control-plane etcd (v3): /standin/nodes/<name> = {"address", "registered"},
/standin/tokens/<token id> = {"secret_sha256"} (24 h lease), /standin/kubeadm-certs = the CA
cert and key encrypted with the certificate key (2 h lease), /standin/acura-store =
{"endpoint", "node"}.

Secrets (token, certificate key) never go on a command line: they travel on stdin or in the
environment of the child process.

Playbook entry points: python3 acura_standin.py <command> [args]; each prints one JSON line.
"""
import base64
import hashlib
import json
import os
import secrets
import select
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import threading
import time
import urllib.request

HOME = os.path.expanduser("~")
D = os.path.join(HOME, ".acura-standin")
PKI = os.path.join(D, "pki", "etcd")
POD_PKI = "/etc/kubernetes/pki/etcd/"
ETCD_DIR = os.path.join(D, "etcd")
STORE_DIR = os.path.join(D, "acura-store")
APISERVER_PID = os.path.join(D, "apiserver.pid")
APISERVER_LOG = os.path.join(D, "apiserver.log")
ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
OPENSSL = "/usr/bin/openssl"
CLIENT_PORT, PEER_PORT, API_PORT = 2379, 2380, 6443
STORE_CLIENT_PORT, STORE_PEER_PORT = 2479, 2480
BOOTSTRAP_SNI = "kubeadm-bootstrap.acura-standin"
TOKEN_TTL, CERTS_TTL = 86400, 7200
ALNUM = string.ascii_lowercase + string.digits


class StandinError(Exception):
    pass


# ---------------------------------------------------------------- node, files, processes

def node():
    with open(os.path.join(D, "node.json")) as f:
        return json.load(f)


def write_file(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_pid(path):
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        with open("/proc/%d/stat" % pid) as f:
            if f.read().split(") ", 1)[1].startswith("Z"):
                return None
        return pid
    except (OSError, ValueError, IndexError):
        return None


def start_detached(argv, log, pid_file, env=None):
    """Starts argv in its own session, detached from the caller's stdio; writes its pid."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    out = open(log, "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         cwd=HOME, start_new_session=True, env=env, close_fds=True)
    out.close()
    write_file(pid_file, "%d\n" % p.pid)
    return p.pid


def run(argv, input=None, env=None, check=True, timeout=60):
    p = subprocess.run(argv, input=input, capture_output=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise StandinError("%s failed (%d): %s" % (os.path.basename(argv[0]), p.returncode,
                                                   p.stderr.decode(errors="replace").strip()))
    return p


# ---------------------------------------------------------------- PKI (openssl)

def pki(name):
    return os.path.join(PKI, name)


def make_ca():
    """The cluster's etcd CA (like kubeadm's etcd/ca), made once."""
    if os.path.exists(pki("ca.crt")) and os.path.exists(pki("ca.key")):
        return False
    os.makedirs(PKI, exist_ok=True)
    run([OPENSSL, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", pki("ca.key.tmp")])
    os.chmod(pki("ca.key.tmp"), 0o600)
    run([OPENSSL, "req", "-x509", "-new", "-key", pki("ca.key.tmp"), "-days", "3650",
         "-subj", "/CN=etcd-ca", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
         "-out", pki("ca.crt.tmp")])
    os.replace(pki("ca.key.tmp"), pki("ca.key"))
    os.replace(pki("ca.crt.tmp"), pki("ca.crt"))
    return True


def issue(kind, name, address, lb_address):
    """server or peer cert for this node, signed by the CA (server and client auth, as kubeadm)."""
    crt, key = pki(kind + ".crt"), pki(kind + ".key")
    if os.path.exists(crt) and os.path.exists(key):
        return False
    sans = ["DNS:" + name, "DNS:localhost", "IP:" + address, "IP:127.0.0.1"]
    if lb_address:
        try:
            socket.inet_aton(lb_address)
            sans.append("IP:" + lb_address)
        except OSError:
            sans.append("DNS:" + lb_address)
    ext = pki(kind + ".ext")
    write_file(ext, "subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n"
               "keyUsage=critical,digitalSignature,keyEncipherment\n" % ",".join(dict.fromkeys(sans)))
    run([OPENSSL, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key + ".tmp"])
    os.chmod(key + ".tmp", 0o600)
    csr = run([OPENSSL, "req", "-new", "-key", key + ".tmp", "-subj", "/CN=" + name]).stdout
    run([OPENSSL, "x509", "-req", "-CA", pki("ca.crt"), "-CAkey", pki("ca.key"),
         "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "3650",
         "-extfile", ext, "-out", crt + ".tmp"], input=csr)
    os.remove(ext)
    os.replace(key + ".tmp", key)
    os.replace(crt + ".tmp", crt)
    return True


def discovery_hash(ca_pem):
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the CA's SubjectPublicKeyInfo (DER)."""
    pub = run([OPENSSL, "x509", "-pubkey", "-noout"], input=ca_pem).stdout
    der = run([OPENSSL, "pkey", "-pubin", "-outform", "der"], input=pub).stdout
    return hashlib.sha256(der).hexdigest()


# ---------------------------------------------------------------- etcd (v3, TLS)

def client_env(api="3"):
    env = dict(os.environ, ETCDCTL_API=api)
    for k in [k for k in env if k.startswith("ETCDCTL_") and k != "ETCDCTL_API"]:
        del env[k]
    return env


def tls_flags():
    return ["--cacert", pki("ca.crt"), "--cert", pki("peer.crt"), "--key", pki("peer.key")]


def endpoints(n=None):
    """This node's member first, then the cluster through the load balancer (kubectl's view)."""
    n = n or node()
    eps = ["https://%s:%d" % (n["address"], CLIENT_PORT)]
    if n.get("lb_address"):
        eps.append("https://%s:%d" % (n["lb_address"], API_PORT))
    return ",".join(eps)


def etcdctl(args, input=None, check=True, eps=None, timeout="5s"):
    argv = [ETCDCTL, "--endpoints=" + (eps or endpoints()), "--dial-timeout=2s",
            "--command-timeout=" + timeout] + tls_flags() + args
    return run(argv, input=input, env=client_env(), check=check)


def kv_get_prefix(prefix):
    out = etcdctl(["get", "--prefix", prefix]).stdout.decode().splitlines()
    return {out[i]: out[i + 1] for i in range(0, len(out) - 1, 2)}


def kv_get(key):
    out = etcdctl(["get", key, "--print-value-only"]).stdout.decode()
    return out[:-1] if out.endswith("\n") else (out or None)


def kv_put(key, value, ttl=None):
    args = ["put", key]
    if ttl:
        lease = etcdctl(["lease", "grant", str(ttl)]).stdout.decode().split()
        args.append("--lease=" + lease[1])  # "lease 694d... granted with TTL(86400s)"
    etcdctl(args, input=value.encode())  # the value on stdin, never on the command line


def health(address, port=CLIENT_PORT, timeout=1.0):
    """The member's /health, like a kubelet heartbeat: True when it answers healthy in time."""
    ctx = ssl.create_default_context(cafile=pki("ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(pki("peer.crt"), pki("peer.key"))
    try:
        with urllib.request.urlopen("https://%s:%d/health" % (address, port), timeout=timeout,
                                    context=ctx) as r:
            return json.loads(r.read().decode()).get("health") == "true"
    except Exception:
        return False


def etcd_argv(n, initial_cluster, state):
    ip, name = n["address"], n["name"]
    return [ETCD, "--name", name, "--data-dir", os.path.join(ETCD_DIR, "data"),
            "--listen-client-urls", "https://%s:%d" % (ip, CLIENT_PORT),
            "--advertise-client-urls", "https://%s:%d" % (ip, CLIENT_PORT),
            "--listen-peer-urls", "https://%s:%d" % (ip, PEER_PORT),
            "--initial-advertise-peer-urls", "https://%s:%d" % (ip, PEER_PORT),
            "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", "acura-standin-etcd",
            "--client-cert-auth", "--trusted-ca-file", pki("ca.crt"),
            "--cert-file", pki("server.crt"), "--key-file", pki("server.key"),
            "--peer-client-cert-auth", "--peer-trusted-ca-file", pki("ca.crt"),
            "--peer-cert-file", pki("peer.crt"), "--peer-key-file", pki("peer.key"),
            "--snapshot-count", "10000"]


def etcd_start(initial_cluster, state="new"):
    """Starts this node's member unless it runs. A data dir that exists keeps its cluster."""
    pid_file = os.path.join(ETCD_DIR, "etcd.pid")
    if read_pid(pid_file):
        return False
    start_detached(etcd_argv(node(), initial_cluster, state), os.path.join(ETCD_DIR, "etcd.log"),
                   pid_file)
    return True


def etcd_wait(timeout=90):
    n = node()
    deadline = time.time() + timeout
    pid_file = os.path.join(ETCD_DIR, "etcd.pid")
    while time.time() < deadline:
        if health(n["address"]):
            return
        if not read_pid(pid_file):
            raise StandinError("etcd exited; see %s" % os.path.join(ETCD_DIR, "etcd.log"))
        time.sleep(0.2)
    raise StandinError("etcd member %s not healthy after %d s; see %s"
                       % (n["name"], timeout, os.path.join(ETCD_DIR, "etcd.log")))


def register():
    """Puts this node in the node list (what `kubectl get nodes` shows)."""
    n = node()
    key = "/standin/nodes/" + n["name"]
    old = kv_get(key)
    if old:
        try:
            if json.loads(old).get("address") == n["address"]:
                return False
        except ValueError:
            pass
    kv_put(key, json.dumps({"address": n["address"], "registered": int(time.time())}))
    return True


# ---------------------------------------------------------------- stand-in apiserver (:6443)

def sni_of(hello):
    """The server name of a TLS ClientHello, or None."""
    try:
        if hello[0] != 0x16 or hello[5] != 1:
            return None
        i = 9 + 2 + 32
        i += 1 + hello[i]
        i += 2 + int.from_bytes(hello[i:i + 2], "big")
        i += 1 + hello[i]
        end = i + 2 + int.from_bytes(hello[i:i + 2], "big")
        i += 2
        while i + 4 <= end:
            etype, elen = int.from_bytes(hello[i:i + 2], "big"), int.from_bytes(hello[i + 2:i + 4], "big")
            if etype == 0:
                nlen = int.from_bytes(hello[i + 7:i + 9], "big")
                return hello[i + 9:i + 9 + nlen].decode()
            i += 4 + elen
    except (IndexError, UnicodeDecodeError):
        pass
    return None


def pipe(a, b):
    socks = [a, b]
    try:
        while True:
            ready, _, _ = select.select(socks, [], [], 300)
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def bootstrap_serve(conn, n):
    """kubeadm's bootstrap, stand-in: `cluster-info` gives the CA certificate (public; the
    joiner checks it against the discovery hash); `certs <token>` gives the encrypted
    kubeadm-certs blob when the token is one `kubeadm token create` issued."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki("server.crt"), pki("server.key"))
    s = ctx.wrap_socket(conn, server_side=True)
    s.settimeout(10)
    f = s.makefile("rwb")
    line = f.readline(4096).decode(errors="replace").strip()
    if line == "cluster-info":
        with open(pki("ca.crt"), "rb") as c:
            reply = {"ca": c.read().decode()}
    elif line.startswith("certs "):
        token = line[6:]
        reply = {"error": "token is not valid (not issued by kubeadm token create, or expired)"}
        tid, _, secret = token.partition(".")
        if tid and secret and all(ch in ALNUM for ch in tid):
            stored = kv_get("/standin/tokens/" + tid)
            if stored and json.loads(stored).get("secret_sha256") == hashlib.sha256(secret.encode()).hexdigest():
                blob = kv_get("/standin/kubeadm-certs")
                reply = {"blob": blob} if blob else {
                    "error": "no uploaded certificates (run kubeadm init phase upload-certs --upload-certs)"}
    else:
        reply = {"error": "unknown request"}
    f.write((json.dumps(reply) + "\n").encode())
    f.flush()
    s.close()


def apiserver_conn(conn, n):
    try:
        conn.settimeout(1.0)
        hello = b""
        deadline = time.time() + 1.0
        while time.time() < deadline:
            try:
                hello = conn.recv(4096, socket.MSG_PEEK)
            except socket.timeout:
                break
            if not hello:
                break
            if hello[0] != 0x16 or len(hello) >= 5 + int.from_bytes(hello[3:5], "big"):
                break
            time.sleep(0.02)
        if not hello or hello[0] != 0x16:
            conn.close()  # a client that says nothing (a port probe) gets a closed connection
            return
        conn.settimeout(None)
        if sni_of(hello) == BOOTSTRAP_SNI:
            bootstrap_serve(conn, n)
            return
        up = socket.create_connection((n["address"], CLIENT_PORT), timeout=3)
        up.settimeout(None)
        pipe(conn, up)
    except Exception as e:
        sys.stderr.write("apiserver: %s\n" % e)
        try:
            conn.close()
        except OSError:
            pass


def apiserver_main():
    n = node()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((n["address"], API_PORT))
    srv.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stderr.write("apiserver (acura-ha STAND-IN) on %s:%d -> etcd %s:%d\n"
                     % (n["address"], API_PORT, n["address"], CLIENT_PORT))
    sys.stderr.flush()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=apiserver_conn, args=(conn, n), daemon=True).start()


def apiserver_start():
    if read_pid(APISERVER_PID):
        return False
    start_detached([sys.executable or "/usr/bin/python3", os.path.abspath(__file__), "apiserver"],
                   APISERVER_LOG, APISERVER_PID)
    n = node()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection((n["address"], API_PORT), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    raise StandinError("the stand-in apiserver did not start; see " + APISERVER_LOG)


# ---------------------------------------------------------------- kubeadm pieces

def token_create():
    tid = "".join(secrets.choice(ALNUM) for _ in range(6))
    secret = "".join(secrets.choice(ALNUM) for _ in range(16))
    kv_put("/standin/tokens/" + tid,
           json.dumps({"secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
                       "created": int(time.time())}), ttl=TOKEN_TTL)
    return tid + "." + secret


def upload_certs():
    key = secrets.token_hex(32)
    with open(pki("ca.crt"), "rb") as a, open(pki("ca.key"), "rb") as b:
        plain = a.read() + b.read()
    blob = run([OPENSSL, "enc", "-aes-256-cbc", "-pbkdf2", "-salt", "-a", "-A",
                "-pass", "env:STANDIN_CERT_KEY"], input=plain,
               env=dict(os.environ, STANDIN_CERT_KEY=key)).stdout.decode().strip()
    kv_put("/standin/kubeadm-certs", blob, ttl=CERTS_TTL)
    return key


def bootstrap_request(lb, line, ca_pem=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca_pem:
        ctx.load_verify_locations(cadata=ca_pem)  # pinned: the CA the discovery hash names
    else:
        ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((lb, API_PORT), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=BOOTSTRAP_SNI) as s:
            s.sendall((line + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    if not data:
        raise StandinError("no answer from the cluster through %s:%d" % (lb, API_PORT))
    return json.loads(data.decode())


def join(secret):
    """The join run: discovery through lb_address:6443, the certificates decrypted with the
    certificate key, `member add`, then this node's member with --initial-cluster-state existing."""
    n = node()
    if os.path.isdir(os.path.join(ETCD_DIR, "data", "member")) and os.path.exists(pki("peer.crt")):
        started = etcd_start("%s=https://%s:%d" % (n["name"], n["address"], PEER_PORT), "existing")
        etcd_wait()
        return {"changed": started, "joined": "already a member"}
    token = secret.get("master_token") or ""
    want = (secret.get("master_discovery_token") or "").strip().lower()
    want = want[7:] if want.startswith("sha256:") else want
    cert_key = secret.get("master_cert_key") or ""
    lb = n["lb_address"]
    ca_pem = bootstrap_request(lb, "cluster-info").get("ca", "")
    if not ca_pem or discovery_hash(ca_pem.encode()) != want:
        raise StandinError("master_discovery_token does not match the cluster's CA "
                           "(kubeadm: cluster CA found in cluster-info ConfigMap is invalid)")
    reply = bootstrap_request(lb, "certs " + token, ca_pem=ca_pem)
    if "blob" not in reply:
        raise StandinError("master_token refused by the cluster: " + reply.get("error", "?"))
    p = run([OPENSSL, "enc", "-d", "-aes-256-cbc", "-pbkdf2", "-a", "-A", "-pass", "env:STANDIN_CERT_KEY"],
            input=reply["blob"].encode(), env=dict(os.environ, STANDIN_CERT_KEY=cert_key), check=False)
    plain = p.stdout.decode(errors="replace")
    if p.returncode != 0 or "-----BEGIN CERTIFICATE-----" not in plain or "PRIVATE KEY-----" not in plain:
        raise StandinError("master_cert_key does not decrypt the uploaded certificates "
                           "(kubeadm: error decoding certificate key)")
    cert_end = plain.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")
    ca_crt, ca_key = plain[:cert_end], plain[cert_end:]
    if discovery_hash(ca_crt.encode()) != want:
        raise StandinError("the uploaded CA is not the cluster's CA")
    os.makedirs(PKI, exist_ok=True)
    write_file(pki("ca.key"), ca_key, 0o600)
    write_file(pki("ca.crt"), ca_crt)
    for kind in ("server", "peer"):
        for ext in (".crt", ".key"):
            if os.path.exists(pki(kind + ext)):
                os.remove(pki(kind + ext))
        issue(kind, n["name"], n["address"], lb)
    # member add through the load balancer, with this node's new client certificate
    lb_ep = "https://%s:%d" % (lb, API_PORT)
    peer_url = "https://%s:%d" % (n["address"], PEER_PORT)
    members = json.loads(etcdctl(["member", "list", "-w", "json"], eps=lb_ep).stdout.decode())
    mine = [m for m in members.get("members", []) if peer_url in m.get("peerURLs", [])]
    if not mine:
        etcdctl(["member", "add", n["name"], "--peer-urls=" + peer_url], eps=lb_ep)
        members = json.loads(etcdctl(["member", "list", "-w", "json"], eps=lb_ep).stdout.decode())
    cluster = []
    for m in members.get("members", []):
        name = m.get("name") or (n["name"] if peer_url in m.get("peerURLs", []) else None)
        if name:
            cluster += ["%s=%s" % (name, u) for u in m.get("peerURLs", [])]
    shutil.rmtree(os.path.join(ETCD_DIR, "data"), ignore_errors=True)
    etcd_start(",".join(cluster), "existing")
    etcd_wait()
    return {"changed": True, "joined": ",".join(cluster)}


# ---------------------------------------------------------------- Acura's store (v2)

def store_endpoint():
    v = kv_get("/standin/acura-store")
    return json.loads(v)["endpoint"] if v else None


def store_alive(ep, timeout=1.0):
    try:
        with urllib.request.urlopen(ep + "/health", timeout=timeout) as r:
            return json.loads(r.read().decode()).get("health") == "true"
    except Exception:
        return False


def store_get(ep, key="/overlay_list"):
    p = run([ETCDCTL, "--endpoints=" + ep, "get", key], env=client_env("2"), check=False)
    return p.stdout.decode().rstrip("\n") if p.returncode == 0 else None


def store_up(spec):
    """Acura's store, started once; a first deploy writes /overlay_list (v2), an update only
    reports what it holds."""
    n = node()
    ep = store_endpoint()
    changed = False
    if not (ep and store_alive(ep)):
        ip = n["address"]
        ep = "http://%s:%d" % (ip, STORE_CLIENT_PORT)
        pid_file = os.path.join(STORE_DIR, "etcd.pid")
        if not read_pid(pid_file):
            start_detached([ETCD, "--name", "acura-store", "--data-dir", os.path.join(STORE_DIR, "data"),
                            "--listen-client-urls", ep, "--advertise-client-urls", ep,
                            "--listen-peer-urls", "http://%s:%d" % (ip, STORE_PEER_PORT),
                            "--initial-advertise-peer-urls", "http://%s:%d" % (ip, STORE_PEER_PORT),
                            "--initial-cluster", "acura-store=http://%s:%d" % (ip, STORE_PEER_PORT),
                            "--initial-cluster-token", "acura-standin-store", "--enable-v2=true"],
                           os.path.join(STORE_DIR, "etcd.log"), pid_file)
            changed = True
        deadline = time.time() + 60
        while not store_alive(ep):
            if time.time() > deadline or not read_pid(pid_file):
                raise StandinError("Acura's store did not start; see " + os.path.join(STORE_DIR, "etcd.log"))
            time.sleep(0.2)
        new = json.dumps({"endpoint": ep, "node": n["name"]})
        if kv_get("/standin/acura-store") != new:
            kv_put("/standin/acura-store", new)
            changed = True
    value = store_get(ep)
    try:
        parsed = json.loads(value) if value else None
    except ValueError:
        parsed = None
    out = {"endpoint": ep, "overlay_list": value, "overlay_list_parsed": parsed}
    if not spec.get("update_cluster"):
        want = json.dumps(spec["overlay_list"], separators=(",", ":"))
        if value != want:
            run([ETCDCTL, "--endpoints=" + ep, "set", "/overlay_list", want], env=client_env("2"))
            changed = True
    out["changed"] = changed
    return out



# ---------------------------------------------------------------- playbook entry points

def write_if_changed(path, data, mode):
    try:
        with open(path) as f:
            if f.read() == data:
                os.chmod(path, mode)
                return False
    except FileNotFoundError:
        pass
    write_file(path, data, mode)
    return True


def setup(spec):
    """node.json and the kubectl/kubeadm stand-ins; says whether this node has a CA and a member."""
    for d in (D, PKI, ETCD_DIR, os.path.join(HOME, ".local", "bin")):
        os.makedirs(d, exist_ok=True)
    os.chmod(os.path.dirname(PKI), 0o700)
    changed = write_if_changed(os.path.join(D, "node.json"), json.dumps(spec["node"], indent=2) + "\n", 0o644)
    for name, text in spec.get("tools", {}).items():
        changed = write_if_changed(os.path.join(HOME, ".local", "bin", name), text, 0o755) or changed
    return {"changed": changed,
            "ca": os.path.exists(pki("ca.crt")) and os.path.exists(pki("ca.key")),
            "member": os.path.isdir(os.path.join(ETCD_DIR, "data", "member"))}


def member(spec):
    """The initial run on one node: the cluster's CA, this node's certificates, its member."""
    changed = False
    have = None
    if os.path.exists(pki("ca.crt")):
        with open(pki("ca.crt")) as f:
            have = f.read()
    if have != spec["ca_crt"]:
        if have and os.path.isdir(os.path.join(ETCD_DIR, "data", "member")):
            raise StandinError("this node's etcd member was made with another CA (%s); "
                               "remove ~/.acura-standin to start it afresh" % pki("ca.crt"))
        write_file(pki("ca.key"), spec["ca_key"], 0o600)
        write_file(pki("ca.crt"), spec["ca_crt"])
        for f in ("server.crt", "server.key", "peer.crt", "peer.key"):
            if os.path.exists(pki(f)):
                os.remove(pki(f))
        changed = True
    n = node()
    for kind in ("server", "peer"):
        changed = issue(kind, n["name"], n["address"], n.get("lb_address")) or changed
    changed = etcd_start(spec["initial_cluster"], "new") or changed
    return {"changed": changed}


def main(argv):
    cmd = argv[0] if argv else ""
    if cmd == "apiserver":
        apiserver_main()
        return
    try:
        if cmd == "setup":
            out = setup(json.loads(sys.stdin.read()))
        elif cmd == "ca":
            out = {"changed": make_ca()}
            with open(pki("ca.crt")) as a, open(pki("ca.key")) as b:
                out.update(ca_crt=a.read(), ca_key=b.read())
        elif cmd == "member":
            out = member(json.loads(sys.stdin.read()))
        elif cmd == "etcd-wait":
            etcd_wait()
            out = {"changed": False}
        elif cmd == "register":
            changed = register()
            out = {"changed": apiserver_start() or changed}
        elif cmd == "join":
            out = join(json.loads(sys.stdin.read()))
        elif cmd == "store-up":
            out = store_up(json.loads(sys.stdin.read()))
        else:
            raise StandinError("unknown command %r" % cmd)
    except (StandinError, OSError, subprocess.TimeoutExpired) as e:
        print(json.dumps({"failed": True, "msg": str(e)}))
        sys.stderr.write("acura-standin: %s\n" % e)
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
