#!/usr/bin/env python3
"""Writes a tiny OCI image layout (one layer holding one text file) for skopeo to push, so the
registry tests need no network: make-oci-image.py DIR TAG TEXT. Different TEXT, different
digest."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

out, tag, text = sys.argv[1], sys.argv[2], sys.argv[3].encode()
os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)


def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


tar = io.BytesIO()
with tarfile.open(fileobj=tar, mode="w") as t:
    info = tarfile.TarInfo("hello.txt")
    info.size = len(text)
    info.mtime = 0
    t.addfile(info, io.BytesIO(text))
raw = tar.getvalue()
layer = blob(gzip.compress(raw, mtime=0))
layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
config = blob(json.dumps({
    "architecture": "amd64", "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    "config": {}}).encode())
config["mediaType"] = "application/vnd.oci.image.config.v1+json"
manifest = blob(json.dumps({"schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "config": config, "layers": [layer]}).encode())
manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
manifest["annotations"] = {"org.opencontainers.image.ref.name": tag}
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [manifest]}, f)
