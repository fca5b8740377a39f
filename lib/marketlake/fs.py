"""File-system helpers over Hadoop's FileSystem API, so the same code serves local paths, HDFS and object stores."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class FileInfo:
    path: str  # fully qualified path to read, e.g. file:/work/lakehouse/landing/...
    size: int
    uri: str  # the same path URI-encoded (a space is %20): the form of Spark's _metadata.file_path


def _fs_and_path(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hpath = jvm.org.apache.hadoop.fs.Path(str(path))
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return fs, fs.makeQualified(hpath)


def qualify(spark: SparkSession, path: str) -> str:
    """The fully qualified form of a path (adds the scheme, makes it absolute)."""
    return str(_fs_and_path(spark, path)[1].toString())


def exists(spark: SparkSession, path: str) -> bool:
    fs, hpath = _fs_and_path(spark, path)
    return bool(fs.exists(hpath))


def is_dir(spark: SparkSession, path: str) -> bool:
    fs, hpath = _fs_and_path(spark, path)
    return bool(fs.exists(hpath) and fs.getFileStatus(hpath).isDirectory())


def list_files(spark: SparkSession, path: str) -> list[FileInfo]:
    """All files below `path` (or `path` itself), sorted, skipping hidden and in-progress ones (`_`, `.`)."""
    fs, hpath = _fs_and_path(spark, path)
    if not fs.exists(hpath):
        return []
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    found: list[FileInfo] = []
    iterator = fs.listFiles(hpath, True)
    while iterator.hasNext():
        status = iterator.next()
        qualified = str(status.getPath().toString())
        relative = qualified[len(str(hpath.toString())) :]
        if any(part.startswith(("_", ".")) for part in relative.split("/") if part):
            continue
        uri = str(jvm.org.apache.hadoop.fs.Path(qualified).toUri().toString())
        found.append(FileInfo(qualified, int(status.getLen()), uri))
    return sorted(found, key=lambda f: f.path)


def mkdirs(spark: SparkSession, path: str) -> None:
    fs, hpath = _fs_and_path(spark, path)
    fs.mkdirs(hpath)


def delete(spark: SparkSession, path: str) -> None:
    fs, hpath = _fs_and_path(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)


def move(spark: SparkSession, src: str, dst: str) -> None:
    """Rename src to dst, replacing dst; creates dst's parent."""
    fs, hsrc = _fs_and_path(spark, src)
    _, hdst = _fs_and_path(spark, dst)
    fs.mkdirs(hdst.getParent())
    if fs.exists(hdst):
        fs.delete(hdst, False)
    if not fs.rename(hsrc, hdst):
        raise OSError(f"could not move {src} to {dst}")


def replace_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small text file whole, in place of any file at path: to a hidden temporary name beside it, then
    renamed over it (FileContext's rename with OVERWRITE, which HDFS does atomically), so a reader sees the old
    file or the new one, never part of one."""
    fs, hpath = _fs_and_path(spark, path)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop = jvm.org.apache.hadoop.fs
    tmp = hadoop.Path(hpath.getParent(), f".{hpath.getName()}.{uuid.uuid4().hex}.tmp")
    stream = fs.create(tmp, True)
    try:
        stream.write(text.encode("utf-8"))
    finally:
        stream.close()
    try:
        overwrite = spark.sparkContext._gateway.new_array(hadoop.Options.Rename, 1)
        overwrite[0] = hadoop.Options.Rename.OVERWRITE
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        hadoop.FileContext.getFileContext(hpath.toUri(), conf).rename(tmp, hpath, overwrite)
    except BaseException:
        fs.delete(tmp, False)
        raise


def read_first_line(spark: SparkSession, path: str) -> str | None:
    """The first line of a text file (None for an empty file), read on the driver without a Spark job."""
    fs, hpath = _fs_and_path(spark, path)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    stream = fs.open(hpath)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
        line = reader.readLine()
        return None if line is None else str(line)
    finally:
        stream.close()
