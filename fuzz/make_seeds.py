#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ from real samples: the golden bytes of
docs/protocol.md (and their Go-encoded variants), the zos container as Go's msgpack v4
writes it, specs from the tests and docs, and this machine's /proc files and a few real
filesystem superblocks. Run from the repo root: python3 fuzz/make_seeds.py. The corpus is
checked in; rerun only to refresh it (it replaces each target's directory; name targets
to refresh only those: python3 fuzz/make_seeds.py image_layer image_layout)."""
import hashlib, json, os, shutil, struct, subprocess, sys, tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# --- a minimal msgpack writer, Go v4 style (fixed-width ints on request) -------------
def s(x):
    b = x.encode()
    n = len(b)
    if n < 32: return bytes([0xa0 | n]) + b
    if n < 256: return b"\xd9" + bytes([n]) + b
    return b"\xda" + struct.pack(">H", n) + b
def binb(b):
    if len(b) < 256: return b"\xc4" + bytes([len(b)]) + b
    return b"\xc5" + struct.pack(">H", len(b)) + b
def m(pairs):
    out = bytes([0x80 | len(pairs)]) if len(pairs) < 16 else b"\xde" + struct.pack(">H", len(pairs))
    for k, v in pairs: out += s(k) + v
    return out
def arr(items):
    out = bytes([0x90 | len(items)]) if len(items) < 16 else b"\xdc" + struct.pack(">H", len(items))
    return out + b"".join(items)
def i64(n): return b"\xd3" + struct.pack(">q", n)
def u64(n): return b"\xcf" + struct.pack(">Q", n)
def f64(x): return b"\xcb" + struct.pack(">d", x)
NIL, TRUE, FALSE = b"\xc0", b"\xc3", b"\xc2"
def ts(sec, nsec=0):
    if nsec == 0 and 0 <= sec < 2**32: return b"\xd6\xff" + struct.pack(">I", sec)
    if 0 <= sec < 2**34: return b"\xd7\xff" + struct.pack(">Q", (nsec << 34) | sec)
    return b"\xc7\x0c\xff" + struct.pack(">Iq", nsec, sec)

ID = "9b2f7c9e-0d3a-4c1e-8f5b-2a6d4e8c1f00"
def request(inputs, method="Add", obj=("calculator", "1.0"), extra=()):
    return m([("ID", s(ID)), ("Inputs", inputs),
              ("Object", m([("Name", s(obj[0])), ("Version", s(obj[1]))])),
              ("ReplyTo", s(ID)), ("Method", s(method))] + list(extra))
def response(data, call_err=NIL, err=NIL, code=None):
    pairs = [("ID", s(ID)), ("Output", m([("Data", data), ("Error", call_err)])), ("Error", err)]
    if code: pairs.append(("Code", s(code)))
    return m(pairs)

seeds = {}
def add(target, data):
    if isinstance(data, str): data = data.encode()
    seeds.setdefault(target, []).append(data)

# --- bus: docs/protocol.md golden bytes -------------------------------------------
golden_req = request(arr([binb(f64(1.0)), binb(f64(2.0))]))
assert len(golden_req) == 165, len(golden_req)
go_int_req = request(arr([binb(i64(1)), binb(i64(2))]))
ours_req = request(arr([b"\xc4\x01\x01", b"\xc4\x01\x02"]), extra=[("Deadline", u64(1_700_000_000_000))])
nil_inputs = request(NIL, method="List")
status_req = request(NIL, method="Status", obj=("zbus", "1.0"))
zos_exec = request(arr([binb(s("ns")), binb(s("c1")), binb(i64(3_000_000_000)), binb(s("echo")), binb(s("hi"))]),
                   method="Exec", obj=("container", "0.0.1"))
deep = m([("ID", s("d1")), ("Inputs", b"\x91" * 100 + NIL), ("ReplyTo", s("r1"))])
reply_popped = response(binb(f64(3.0)))
for p in [golden_req, go_int_req, ours_req, nil_inputs, status_req, zos_exec, deep,
          golden_req[:100], reply_popped, arr([s(ID), NIL])]:
    add("bus_request", p)
    add("bus_scan", b"\x40" + p)
    add("bus_scan", b"\xff" + p)
responses = [
    response(binb(f64(3.0))),
    response(binb(f64(0.0)), call_err=m([("Message", s("division by zero"))])),
    response(b"\xc4\x00", call_err=m([("Message", s("division by zero"))])),
    response(b"\xc4\x01\xc0", call_err=m([("Message", s("division by zero")), ("Code", s("InvalidArgument"))])),
    response(NIL, err=s("unknown object")),
    response(b"\xc4\x00", err=s("unknown method 'Nope'")),
    response(b"\xc4\x01\xc0", err=s("unknown method 'Nope'"), code="UnknownMethod"),
    response(NIL),
    response(binb(arr([f64(3.0), f64(-1.0)]))),
    response(b"\xc4\x01\xc0"),
    response(s("text data")),
    m([("Objects", arr([m([("Name", s("calculator")), ("Version", s("1.0"))])])),
       ("Workers", arr([m([("State", s("free")), ("StartTime", ts(1_700_000_000)), ("Action", s(""))]),
                        m([("State", s("busy")), ("StartTime", ts(1_700_000_000, 123_456_789)),
                           ("Action", s("[calculator@1.0].Add()"))]),
                        m([("State", s("free")), ("StartTime", ts(-62_135_596_800)), ("Action", s(""))])]))]),
    struct.pack(">Q", (5 << 34) | 1_700_000_000),
]
for r in responses:
    add("bus_response", r)

# --- zos: pkg.Container as Go's msgpack v4 encodes it ------------------------------
zos_container = m([
    ("Name", s("zdb1")), ("RootFS", s("/var/cache/zdb")), ("Env", arr([s("A=1"), s("PATH=/bin")])),
    ("WorkingDir", s("/")), ("Network", m([("Namespace", s("ndmz"))])),
    ("Mounts", arr([m([("Source", s("/data")), ("Target", s("/data"))]),
                    m([("Source", s("/dev/fuse")), ("Target", s("/dev/fuse")), ("Type", s("bind")),
                       ("Options", arr([s("rbind"), s("ro")]))])])),
    ("Entrypoint", s("/bin/zdb --port 9900")), ("Interactive", FALSE), ("CPU", u64(1)),
    ("Memory", u64(256 << 20)), ("Logs", arr([m([("Type", s("redis")), ("Data", m([("Stdout", s("redis://x")), ("Stderr", s("redis://y"))]))])])),
    ("Stats", NIL), ("Elevated", TRUE), ("CreatedAt", ts(-62_135_596_800)),
    ("RootFsPropagation", s("rslave")), ("ShutdownTimeout", i64(3_000_000_000)),
])
add("zos_types", b"\x00" + zos_container)
add("zos_types", b"\x00" + m([("Name", s("x"))]))
for idx, inputs in [(0, [s("ns"), zos_container]), (1, [s("ns"), s("zdb1")]), (3, [s("ns")]), (4, []),
                    (5, [s("ns"), s("zdb1"), i64(1_000_000_000), s("ls"), s("-l")]), (7, [s("ns"), s("zdb1")])]:
    add("zos_types", bytes([idx * 2 + 1]) + arr([binb(x) for x in inputs]))

# --- JSON specs from the tests and docs --------------------------------------------
rbd = {"kind": "rbd", "monitors": ["10.0.0.1:6789"], "pool": "rbd", "image": "base",
       "user": "admin", "secret": "AQBxyz==", "snapshot": "s1", "namespace": "ns", "read_only": True}
attach_specs = [
    {"name": "img", "source": {"kind": "loop", "path": "/tmp/a.sqsh"}},
    {"name": "base", "source": rbd},
    {"source": {"kind": "local", "path": "/dev/vdb", "read_only": True}},
]
attach_refs = [{"existing": {"id": 3}}, {"inline": attach_specs[1]}]
mount_specs = [
    {"name": "base", "source": {"kind": "image", "attach": {"inline": attach_specs[1]}, "fs_type": "squashfs", "options": ["noatime"]}},
    {"source": {"kind": "overlay", "lowers": [{"existing": {"name": "base"}}, {"inline": {"source": {"kind": "stored", "image": "busybox:1"}}}], "persist_dir": "/srv/upper"}},
    {"source": {"kind": "bind", "path": "etc", "base": {"existing": {"id": 1}}, "read_only": True, "recursive": True}},
    {"source": {"kind": "stored", "image": "sha256:0123456789ab", "options": ["ro"]}},
]
oci_doc = {
    "ociVersion": "1.0.2-dev", "root": {"path": "rootfs", "readonly": True},
    "process": {"terminal": False, "args": ["/bin/app", "-v"], "env": ["A=1"], "cwd": "/srv",
                "user": {"uid": 1000, "gid": 100, "additionalGids": [5], "umask": 18},
                "capabilities": {"bounding": ["CAP_NET_ADMIN", "kill"], "effective": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 42, "soft": 42}], "noNewPrivileges": False},
    "hostname": "oci-host", "annotations": {"x.y": "z"},
    "mounts": [{"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]}],
    "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}], "pids": {"limit": 20},
                            "memory": {"limit": 33554432}},
              "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}],
              "sysctl": {"kernel.msgmax": "12345"}, "maskedPaths": ["/proc/cpuinfo"],
              "readonlyPaths": ["/etc"], "rootfsPropagation": "rslave",
              "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}},
}
container_specs = [
    {"mount": {"existing": {"id": 1}}, "command": ["sh", "-c", "x y"]},
    {"name": "web", "group": "tenant", "mount": {"inline": mount_specs[1]}, "command": "sh -c 'echo \"hi\" \\$x'",
     "env": ["PATH=/bin"], "working_dir": "/srv", "hostname": "h", "user": {"uid": 1, "gid": 2},
     "systemd": True, "state": "running", "network": {"namespace": "blue"},
     "binds": [{"source": "/data", "target": "/data", "read_only": True}],
     "resources": {"cpu_millis": 500, "memory_bytes": 67108864, "pids": 64},
     "capabilities": {"add": ["CAP_NET_ADMIN"], "drop": ["CAP_KILL"]},
     "stop_signal": "SIGRTMIN+3", "stop_timeout_ms": 5000,
     "restart": {"policy": "on_failure", "max_retries": 3}},
    {"mount": {"inline": mount_specs[0]}, "command": "/bin/app", "network": "private", "oci": oci_doc},
    {"mount": {"existing": {"id": 1}}, "command": "x", "oci": {"process": {"args": ["/x"]}, "linux": {"rootfsPropagation": "shared"}}},
]
for x in container_specs: add("container_spec", json.dumps(x))
for t in ["sh -c 'a b' \"c\\\"d\" e\\ f", "TERM", "SIGRTMIN+3", "RTMAX-2", "15", "1000:100", "on-failure:3", "always", "web-1", "42"]:
    add("container_spec", t)
for x in mount_specs + attach_refs[:1] + [{"id": 7}, {"name": "web"}, "user", {"container": 9}]:
    add("mount_spec", json.dumps(x))
for x in attach_specs + attach_refs: add("attach_spec", json.dumps(x))
for t in ["oci:/srv/img:latest", "oci-archive:/srv/a.tar:v1", "docker-archive:/srv/d.tar:busybox:1",
          "/srv/images/base.sqsh", "busybox:1.36", "registry.local:5000/a/b:tag", "sha256:0123456789abcdef",
          "sha256:" + "ab" * 32, "./a/../b", "/etc/passwd"]:
    add("image_source", t)
add("image_source", json.dumps({"source": "oci:/srv/img:latest", "name": "web:1"}))
gateway = [
    (0, {"monitors": ["192.168.1.48"], "pool": "rbd", "image": "systemd.sqsh", "options": {"ro": True, "name": "admin", "secret": "XXXX"}}),
    (1, {"id": 0, "fs_type": "squashfs", "mount_options": ["ro"]}),
    (2, {"lower": [0, {"kind": "attach", "attach": {"fs_type": "squashfs"}}]}),
    (3, {"kind": "rbd", "rbd": {"monitors": ["127.0.0.1"], "pool": "p", "image": "i", "options": {"name": "admin", "secret": "k"}}}),
    (3, {"kind": "loopback", "loopback": {"path": "/x", "base": "attic"}}),
    (4, {"kind": "overlay", "overlay": {"lower": [{"kind": "rbd", "rbd": {"fs_type": "squashfs", "mount_options": ["ro"], "rbd": {"monitors": ["192.168.1.48"], "pool": "rbd", "image": "systemd.sqsh", "options": {"ro": True, "name": "admin", "secret": "XXX"}}}}]}}),
    (5, {"name": "test-container", "mount": {"id": 1, "kind": "overlay"}, "command": "/usr/lib/systemd/systemd", "state": "created", "systemd": True}),
]
for which, body in gateway: add("gateway_json", bytes([which]) + json.dumps(body).encode())
for l in ["127.0.0.1:8080", "localhost:80", "[::1]:9", "unix:///run/imageapi.sock"]:
    add("gateway_json", b"\x06" + l.encode())

# --- /proc and friends from this machine --------------------------------------------
def read(p, limit=16384):
    try:
        with open(p, "rb") as f: return f.read(limit)
    except OSError: return None
mi = read("/proc/self/mountinfo", 65536)
if mi:
    add("mountinfo", mi)
    add("mountinfo", b"\n".join(mi.splitlines()[:8]) + b"\n")
add("mountinfo", "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
                 "40 36 0:34 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
                 "41 36 0:50 / /mnt/a\\040b rw - fuse.sshfs host:/x rw,user_id=0\n")
for p in ["/proc/self/stat", "/proc/self/status", "/proc/self/net/dev", "/proc/1/stat"]:
    b = read(p)
    if b: add("proc_parsers", b)
add("proc_parsers", "1234 (a) b (c)) S 1 1 1 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 123456 0 0\n")
cg = "/sys/fs/cgroup"
for f in ["io.stat", "memory.stat", "cpu.stat"]:
    b = read(os.path.join(cg, f))
    if b: add("proc_parsers", b)
add("proc_parsers", "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\nTotal 12288\n")
add("proc_parsers", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n")
with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "src"); os.mkdir(src)
    open(os.path.join(src, "f"), "w").write("x")
    for name, cmd in [("sqsh", ["mksquashfs", src, os.path.join(d, "sqsh"), "-quiet", "-noappend"]),
                      ("erofs", ["mkfs.erofs", "-q", os.path.join(d, "erofs"), src])]:
        if shutil.which(cmd[0]) and subprocess.run(cmd, capture_output=True).returncode == 0:
            add("proc_parsers", read(os.path.join(d, name), 4096))
    img = os.path.join(d, "ext4")
    with open(img, "wb") as f: f.truncate(4 << 20)
    if shutil.which("mkfs.ext4") and subprocess.run(["mkfs.ext4", "-q", "-F", img], capture_output=True).returncode == 0:
        add("proc_parsers", read(img, 4096))

# --- image layers (tars) and image metadata (OCI layout / docker archive) ----------
import io, tarfile
def layer(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, arg in members:
            ti = tarfile.TarInfo(name)
            ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            ti.type = kind
            data = None
            if kind == tarfile.REGTYPE:
                data = arg.encode(); ti.size = len(data)
            elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                ti.linkname = arg
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                ti.devmajor, ti.devminor = arg
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()
R, D, S, H, W = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, None
ESC = "/tmp/ib-fuzz-escape"  # fuzz_targets/image_layer.rs watches it
for members in [
    [("etc", D, None), ("etc/hostname", R, "box\n"), ("bin", D, None), ("bin/sh", R, "#!"),
     ("bin/ash", H, "bin/sh"), ("sh", S, "bin/sh"), ("./usr/lib/x", R, "nested")],
    [("a", D, None), ("a/b", R, "1"), ("a/.wh.b", R, ""), ("d", D, None), ("d/.wh..wh..opq", R, ""),
     ("d/kept", R, "2"), ("gone", R, "3"), (".wh.gone", R, "")],
    [("esc", S, ESC), ("esc/sentinel", R, "overwritten"), ("esc/new", R, "x"), ("esc/.wh.sentinel", R, "")],
    [("up", S, "../../../../.."), ("up" + ESC + "/new", R, "x"), ("hl", H, ESC + "/sentinel"),
     ("hl2", H, "../" * 6 + ESC[1:] + "/sentinel"), ("../out", R, "x"), ("/abs", R, "x")],
    [("dir", S, ESC), ("dir/../../x", R, "y"), (".wh...", R, ""), ("x/.wh.", R, "")],
    [("dev", D, None), ("dev/null", tarfile.CHRTYPE, (1, 3)), ("dev/fifo", tarfile.FIFOTYPE, None),
     ("dev/sda", tarfile.BLKTYPE, (8, 0))],
    [("long/" + "n" * 200 + "/file", R, "pax long name"), ("l", S, "long/" + "n" * 200)],
]:
    add("image_layer", layer(members))
M_TYPE = "application/vnd.oci.image.manifest.v1+json"
I_TYPE = "application/vnd.oci.image.index.v1+json"
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {
    "Env": ["PATH=/bin", "A=1"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "echo hi"],
    "WorkingDir": "/srv", "User": "1000:1000", "Labels": {"atomic.type": "system"}}})
manifest = json.dumps({"schemaVersion": 2, "mediaType": M_TYPE,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "@C", "size": 1},
                       "layers": [{"digest": "sha256:" + "ab" * 32, "size": 1}]})
def index(media, tag=None, platform=None):
    d = {"mediaType": media, "digest": "@M", "size": 1}
    if tag: d["annotations"] = {"org.opencontainers.image.ref.name": tag}
    if platform: d["platform"] = platform
    return json.dumps({"schemaVersion": 2, "manifests": [d]})
nested = json.dumps({"schemaVersion": 2, "manifests": [
    {"mediaType": M_TYPE, "digest": "@C", "platform": {"os": "linux", "architecture": "arm64"}},
    {"mediaType": M_TYPE, "digest": "@C", "platform": {"os": "linux", "architecture": "amd64"}}]})
for sel, parts in [(0, [index(M_TYPE), manifest, config]), (2, [index(M_TYPE, "1"), manifest, config]),
                   (2, [index(M_TYPE, "docker.io/library/busybox:1"), manifest, "{}"]),
                   (0, [index(I_TYPE), nested, manifest]), (0, ['{"manifests":[]}']),
                   (0, [index(M_TYPE), json.dumps({"config": {"digest": "@C"}, "layers": [{"digest": "sha256:../../x"}]}), config])]:
    add("image_layout", bytes([sel]) + b"\0".join(p.encode() for p in parts))
docker = json.dumps([{"Config": "config.json", "RepoTags": ["busybox:1"], "Layers": ["layer.tar", "../../etc/shadow"]}])
for sel in [1, 3]:
    add("image_layout", bytes([sel]) + b"\0".join([docker.encode(), config.encode(), layer([("f", R, "x")])]))

# --- runc / crun output --------------------------------------------------------------
for t in ['{"ociVersion":"1.0.2-dev","id":"ib-7","pid":4242,"status":"running","bundle":"/var/lib/imagebus/container/7/bundle",'
          '"rootfs":"/mnt/root","created":"2026-12-02T10:00:00.123456789Z","owner":""}',
          '{"id":"ib-8","pid":0,"status":"stopped","bundle":"/b"}',
          "null", "[]", '[{"id":"a","pid":1,"status":"created","bundle":"/b"},{"id":"b","status":"paused"}]',
          '{"level":"warning","msg":"deprecated flag","time":"2026-12-02T10:00:00Z"}\n'
          '{"level":"error","msg":"container does not exist","time":"2026-12-02T10:00:00Z"}\n',
          'time="2026-12-02T10:00:00Z" level=error msg="runc run failed: unable to start container process: '
          'exec: \\"nosuchcmd\\": executable file not found in $PATH"\n',
          '{"level":"error","msg":"exec failed: unable to start container process: exec: \\"/x\\": permission denied"}\n',
          "crun: executable file `nosuchcmd` not found in $PATH: No such file or directory\n"]:
    add("runtime_output", t)

only = sys.argv[1:]
for target, items in seeds.items():
    if only and target not in only:
        continue
    d = os.path.join(ROOT, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for data in items:
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f: f.write(data)
    print(f"{target}: {len(items)} seeds")
