"""The parts of a distributed Supa, each a real process on this machine:
PostgreSQL clusters (management and workers), Redis with a password over TLS, the
tenant manager, gateways, nginx as the load balancer and standalone
supa-rest. Every part lives in one work dir and is stopped by `close()`.
The fault drills add a TCP proxy they can cut in front of each worker and
an object store on a small disk of its own."""

import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import datetime
import ipaddress
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# The suite's own helpers (tests/ is on the path through its conftest).
from conftest import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "debug"
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]


def as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Part:
    """A process whose output goes to a log file in the work dir."""

    def __init__(self, work, name, cmd, env=None):
        self.work, self.name, self.cmd, self.env = work, name, cmd, env
        self.proc = None

    def start(self):
        log = self.work / f"{self.name}.log"
        self.proc = subprocess.Popen(self.cmd, stdout=open(log, "a"), stderr=subprocess.STDOUT, env=self.env)
        self.proc.log_path = log
        return self

    def kill(self):
        """SIGKILL: a crash, nothing drained."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class CutProxy:
    """A TCP proxy in front of a PostgreSQL cluster that a test can cut:
    `blackhole()` stops moving bytes both ways (and holds new connections
    unanswered) as a network partition does, `heal()` lets them flow again,
    so connections that waited carry on as TCP's retransmits would make
    them; `reset()` kills every connection at once and refuses new ones
    until `heal()`, as a rebooted switch or a failed-over address does."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.refusing = False
        self.pairs = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                client.close()
                continue
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client):
        self.flowing.wait()
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self.lock:
            self.pairs.append((client, upstream))
        socks = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(socks, [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    # While cut, what was read waits here, as packets
                    # would wait for a retransmit.
                    self.flowing.wait()
                    (upstream if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            with self.lock:
                if (client, upstream) in self.pairs:
                    self.pairs.remove((client, upstream))
            client.close()
            upstream.close()

    def blackhole(self):
        self.flowing.clear()

    def reset(self):
        self.refusing = True
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def heal(self):
        self.refusing = False
        self.flowing.set()

    def close(self):
        self.closed = True
        self.heal()
        self.listener.close()


class SmallDisk:
    """A tmpfs of `megabytes` mounted at `path`: a disk that fills up.
    Mounting needs CAP_SYS_ADMIN; `SmallDisk.possible()` says whether this
    machine grants it."""

    def __init__(self, path: Path, megabytes: int):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0777", "tmpfs", str(path)],
                       check=True, capture_output=True)

    @staticmethod
    def possible():
        probe = Path(tempfile.gettempdir()) / f"supa-mount-probe-{os.getpid()}"
        probe.mkdir(exist_ok=True)
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                                  capture_output=True)
            if done.returncode == 0:
                subprocess.run(["umount", str(probe)], capture_output=True)
            return done.returncode == 0
        except FileNotFoundError:
            return False
        finally:
            probe.rmdir()

    def fill(self):
        """Writes a file until the disk refuses (ENOSPC)."""
        with open(self.path / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass

    def free(self):
        (self.path / "filler").unlink(missing_ok=True)

    def close(self):
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


class PgCluster:
    """A PostgreSQL cluster with a password-protected superuser, durable
    (fsync on), listening on 127.0.0.1 only, with logical decoding on as a
    Supa worker wants it."""

    USER = "supa_admin"

    def __init__(self, work, name):
        self.work, self.name = work, name
        self.data = work / name
        self.port = free_port()
        self.password = secrets.token_hex(16)
        pwfile = work / f"{name}.pw"
        pwfile.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres")
        subprocess.run(as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.USER,
                                    "--pwfile", str(pwfile), "--auth=scram-sha-256", "-E", "UTF8",
                                    "--locale=C", "--no-sync"]),
                       check=True, capture_output=True, cwd="/")
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                       "max_connections = 200\nwal_level = logical\nmax_replication_slots = 50\n")
        self.start()

    def pg_ctl(self, *args):
        subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w",
                                    "-l", str(self.work / f"{self.name}.log"), *args]),
                       check=True, capture_output=True, cwd="/")

    def start(self):
        self.pg_ctl("start")

    def restart(self, mode):
        self.pg_ctl("restart", "-m", mode)

    def stop(self):
        try:
            self.pg_ctl("stop", "-m", "fast")
        except subprocess.CalledProcessError:
            pass

    def url(self, database="postgres"):
        return f"postgres://{self.USER}:{self.password}@127.0.0.1:{self.port}/{database}"


NGINX_CONF = """
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx.error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream gateways {{
        {servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://gateways;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


class Topology:
    """Management cluster, two worker clusters, Redis, the tenant manager
    under the `production` profile, two gateways behind nginx.

    For the drills: `proxied` registers each worker through a `CutProxy`
    (`worker.proxy`), `objects_mb` puts the gateways' object store on a
    `SmallDisk` of that size, and `cache_ttl` shortens how long gateways
    cache configs and keys, so an outage outlasts it."""

    def __init__(self, work: Path, proxied=False, objects_mb=None, cache_ttl=None):
        self.work = work
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
        self.parts = []
        self.clusters = []
        self.proxies = []
        self.cache_ttl = cache_ttl
        self.disk = SmallDisk(work / "objects", objects_mb) if objects_mb else None
        self.management = self.cluster("management")
        self.workers = [self.cluster("worker-1"), self.cluster("worker-2")]
        for worker in self.workers:
            worker.proxy = CutProxy(worker.port) if proxied else None
            if worker.proxy:
                self.proxies.append(worker.proxy)

        self.redis_password = secrets.token_hex(16)
        self.redis_port = free_port()
        # TLS only, as ElastiCache with encryption in transit: the parts
        # trust the test CA through SSL_CERT_FILE.
        tls = self.redis_tls(work / "redis-tls")
        self.redis = self.part("redis", [
            "redis-server", "--port", "0", "--tls-port", str(self.redis_port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(tls / "server.pem"), "--tls-key-file", str(tls / "server.key"),
            "--tls-ca-cert-file", str(tls / "ca.pem"), "--tls-auth-clients", "no",
            "--requirepass", self.redis_password, "--save", "", "--appendonly", "no"])
        self.start_redis()
        self.redis_url = f"rediss://:{self.redis_password}@127.0.0.1:{self.redis_port}/"
        self.ca_file = str(tls / "ca.pem")
        # What the parts trust: the system's roots (Deno fetches from npm
        # when it bundles a function) and the test CA.
        system = Path("/etc/ssl/certs/ca-certificates.crt")
        (tls / "bundle.pem").write_bytes((system.read_bytes() if system.exists() else b"")
                                         + (tls / "ca.pem").read_bytes())
        self.trust_file = str(tls / "bundle.pem")

        self.admin_token = "sbp_" + secrets.token_hex(20)
        self.service_token = "supa_svc_" + secrets.token_hex(24)
        # As the AWS deployment gives them: a hex master key (what Secrets
        # Manager generates) and the database password beside its URL.
        master_key = secrets.token_hex(32)
        self.api_port = free_port()
        env = self.env(SUPA_MASTER_KEY=master_key, SUPA_ADMIN_TOKEN=self.admin_token,
                       SUPA_SERVICE_TOKEN=self.service_token, PGPASSWORD=self.management.password)
        url = f"postgres://{PgCluster.USER}@127.0.0.1:{self.management.port}/supa_management"
        self.tenant_manager = self.part("tenant-manager", [
            str(BIN / "supa-tenant-manager"), "--profile", "production",
            "--database-url", url, "--redis-url", self.redis_url,
            "--data-dir", str(work / "tenant-manager"), "--bind", "127.0.0.1", "--port", str(self.api_port),
        ], env)
        self.start_tenant_manager()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        # As a deploy's registration job does it, twice: the second run of
        # `supa workers register` finds the same worker and succeeds.
        for _ in range(2):
            for worker in self.workers:
                port = worker.proxy.port if worker.proxy else worker.port
                self.supa("workers", "register", worker.name, "--host", "127.0.0.1",
                          "--port", str(port), "--admin-user", PgCluster.USER,
                          SUPA_WORKER_ADMIN_PASSWORD=worker.password)

        self.gateways = [self.gateway(i) for i in range(2)]
        self.nginx_port = free_port()
        conf = work / "nginx.conf"
        servers = "\n        ".join(f"server 127.0.0.1:{g.port} max_fails=1 fail_timeout=3s;" for g in self.gateways)
        conf.write_text(NGINX_CONF.format(work=work, port=self.nginx_port, servers=servers))
        self.nginx = self.part("nginx", ["nginx", "-c", str(conf), "-g", "daemon off;"]).start()
        wait_for_port(self.nginx_port, self.nginx.proc, "nginx")
        self.url = f"http://127.0.0.1:{self.nginx_port}"

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPA_", "PGRST_"))}
        if getattr(self, "trust_file", None):
            env["SSL_CERT_FILE"] = self.trust_file
        env.update(extra)
        return env

    def cluster(self, name):
        cluster = PgCluster(self.work, name)
        self.clusters.append(cluster)
        return cluster

    def part(self, name, cmd, env=None):
        part = Part(self.work, name, cmd, env or self.env())
        self.parts.append(part)
        return part

    @staticmethod
    def redis_tls(folder: Path) -> Path:
        """A CA and a server certificate for 127.0.0.1, written to `folder`."""
        folder.mkdir()
        now = datetime.datetime.now(datetime.timezone.utc)

        def cert(subject, key, issuer, issuer_key, ca):
            builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=1))
                       .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            if not ca:
                builder = builder.add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            return builder.sign(issuer_key, hashes.SHA256())

        name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = cert(name("supa rehearsal CA"), ca_key, name("supa rehearsal CA"), ca_key, True)
        server = cert(name("127.0.0.1"), key, ca.subject, ca_key, False)
        pem = serialization.Encoding.PEM
        (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
        (folder / "server.pem").write_bytes(server.public_bytes(pem))
        (folder / "server.key").write_bytes(key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return folder

    def redis_clients(self):
        """The names of the processes connected to Redis (over TLS)."""
        out = subprocess.run(["redis-cli", "--tls", "--cacert", self.ca_file, "-h", "127.0.0.1",
                              "-p", str(self.redis_port), "--no-auth-warning", "-a", self.redis_password,
                              "CLIENT", "LIST"], capture_output=True, text=True, timeout=10, check=True)
        return [line for line in out.stdout.splitlines() if "cmd=client" not in line]

    def start_redis(self):
        self.redis.start()
        wait_for_port(self.redis_port, self.redis.proc, "redis-server")

    def start_tenant_manager(self):
        self.tenant_manager.start()
        deadline = time.monotonic() + 60
        while True:
            if self.tenant_manager.proc.poll() is not None:
                raise RuntimeError(f"the tenant manager exited:\n{self.tenant_manager.proc.log_path.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.api_port}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the tenant manager did not become healthy")
            time.sleep(0.1)

    def gateway(self, i):
        port, admin_port = free_port(), free_port()
        part = self.part(f"gateway-{i + 1}", [
            str(BIN / "supa-gateway"), "--profile", "production",
            # The password apart from the URL, as ECS injects a secret.
            "--tenant-url", f"http://127.0.0.1:{self.api_port}",
            "--redis-url", f"rediss://127.0.0.1:{self.redis_port}/",
            "--bind", "127.0.0.1", "--port", str(port), "--admin-port", str(admin_port),
            "--functions-dir", str(self.work / f"gateway-{i + 1}-functions"),
            # The file backend on a directory both gateways share, as a
            # shared volume would be (or S3).
            "--data-dir", str(self.work / "objects"),
            *(["--cache-ttl", str(self.cache_ttl)] if self.cache_ttl else []),
        ], self.env(SUPA_SERVICE_TOKEN=self.service_token, SUPA_REDIS_PASSWORD=self.redis_password))
        part.port, part.admin_port = port, admin_port
        self.start_gateway(part)
        return part

    def start_gateway(self, part):
        part.start()
        wait_for_port(part.port, part.proc, part.name)

    def api(self):
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.admin_token}"},
                            timeout=60)

    def project(self, name, worker, sql):
        with self.api() as api:
            r = api.post("/v1/projects", json={"name": name, "worker_id": worker.name})
            assert r.status_code == 201, r.text
            project = r.json()
            r = api.post(f"/v1/projects/{project['ref']}/database/query", json={"query": sql})
            assert r.status_code == 201, r.text
        project["url"] = f"{self.url}/project/{project['ref']}"
        return project

    def sql(self, ref, query):
        with self.api() as api:
            r = api.post(f"/v1/projects/{ref}/database/query", json={"query": query})
            assert r.status_code == 201, r.text
            return r.json()

    def supa_rest_for(self, project):
        """Standalone supa-rest for a project, made its `http` upstream."""
        config = httpx.get(f"{self.api_url}/internal/v1/projects/{project['ref']}/config",
                           headers={"Authorization": f"Bearer {self.service_token}"}).json()
        db = config["database"]
        port = free_port()
        part = self.part("supa-rest", [str(BIN / "supa-rest")], self.env(
            PGRST_DB_URI=f"postgres://{db['user']}:{db['password']}@{db['host']}:{db['port']}/{db['name']}",
            PGRST_DB_SCHEMAS="public", PGRST_DB_ANON_ROLE="anon", PGRST_JWT_SECRET=config["jwt_secret"],
            PGRST_SERVER_HOST="127.0.0.1", PGRST_SERVER_PORT=str(port),
        )).start()
        wait_for_port(port, part.proc, "supa-rest")
        self.supa("projects", "upstream", project["ref"], "--http", f"http://127.0.0.1:{port}")
        return part

    def supa(self, *args, **env):
        """Runs the `supa` CLI against the tenant manager; its stdout."""
        done = subprocess.run([str(BIN / "supa"), *args], capture_output=True, text=True, timeout=60,
                              env=self.env(SUPA_API_URL=self.api_url, SUPA_ADMIN_TOKEN=self.admin_token, **env))
        assert done.returncode == 0, done.stderr
        return done.stdout

    def close(self):
        for part in reversed(self.parts):
            part.stop()
        for cluster in self.clusters:
            cluster.stop()
        for proxy in self.proxies:
            proxy.close()
        if self.disk:
            self.disk.close()
