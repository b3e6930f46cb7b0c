"""Unpack the JNI libraries Spark's codecs load (snappy-java, zstd-jni) into the image, at build time.

Why: each library copies its ``.so`` out of its jar into ``java.io.tmpdir`` (/tmp) and loads it from there.
Under the chart's pod settings /tmp is a tmpfs that may be mounted noexec (Docker's default, and some
clusters' policy): the load fails with "failed to map segment from shared object" and every parquet read
dies. Unpacked into the read-only image, where files may be mapped executable, they are loaded from there
(``JAVA_TOOL_OPTIONS`` in the Dockerfile names the paths).
"""

import glob
import platform
import sys
import zipfile
from pathlib import Path

JARS = Path(sys.argv[1])
OUT = Path(sys.argv[2])
SNAPPY_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64"}[platform.machine()]
ZSTD_ARCH = {"x86_64": "amd64", "aarch64": "aarch64"}[platform.machine()]


def unpack(jar_glob: str, member_glob: str, name: str) -> None:
    """The jar's library for this machine, written as ``OUT/name``."""
    (jar,) = glob.glob(str(JARS / jar_glob))
    with zipfile.ZipFile(jar) as archive:
        (member,) = [m for m in archive.namelist() if Path(m).match(member_glob)]
        (OUT / name).write_bytes(archive.read(member))


OUT.mkdir(parents=True, exist_ok=True)
unpack("snappy-java-*.jar", f"org/xerial/snappy/native/Linux/{SNAPPY_ARCH}/libsnappyjava.so", "libsnappyjava.so")
unpack("zstd-jni-*.jar", f"linux/{ZSTD_ARCH}/libzstd-jni-*.so", "libzstd-jni.so")
