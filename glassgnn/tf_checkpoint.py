"""Read float32 variables of a TensorFlow checkpoint without TensorFlow.

Hand-written so that converting a checkpoint needs no TensorFlow (a >500 MB wheel).
A checkpoint ``PREFIX`` is a tensor bundle: ``PREFIX.index``, a leveldb table whose
keys are variable names and whose values are ``BundleEntryProto`` messages pointing
into the ``PREFIX.data-*`` shards, each tensor with its masked CRC32C. Only
uncompressed tables (what TensorFlow writes) and float32 tensors are supported.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_BUNDLE_DTYPE_FLOAT = 1  # tensorflow DataType DT_FLOAT
_TABLE_MAGIC = 0xDB4775248B80FB57  # leveldb table footer magic


class CheckpointError(ValueError):
    """The checkpoint is missing or malformed (or, from the converter, not DeepMind's model)."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a serialised protobuf message (varint, fixed, bytes)."""
    fields, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def _block(data: bytes, handle: bytes, path: Path) -> bytes:
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + 5 > len(data):
        raise CheckpointError(f"{path}: block beyond the end of the file (truncated?)")
    if data[offset + size] != 0:
        raise CheckpointError(f"{path}: compressed table blocks are not supported")
    return data[offset : offset + size]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of a leveldb block (keys are prefix-compressed)."""
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * num_restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _crc32c(data: bytes) -> int:
    table = _crc32c_table()
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


def _unmask_crc(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def read_checkpoint(prefix: str | Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read float32 variables of a TensorFlow checkpoint without TensorFlow.

    Args:
        prefix: checkpoint prefix (``PREFIX.index`` and ``PREFIX.data-*`` must exist).
        names: variables to read; all float32 variables if ``None``.

    Returns:
        Variable name -> array of the stored shape (float32). Each tensor's CRC32C
        is checked against the index.

    Raises:
        CheckpointError: missing files, a malformed index, or an unsupported entry.
    """
    prefix = Path(prefix)
    index_path = Path(f"{prefix}.index")
    if not index_path.is_file():
        raise CheckpointError(f"{index_path} not found: {prefix} is not a TensorFlow checkpoint prefix")
    index = index_path.read_bytes()
    if len(index) < 48 or struct.unpack_from("<Q", index, len(index) - 8)[0] != _TABLE_MAGIC:
        raise CheckpointError(f"{index_path} is not a TensorFlow checkpoint index (bad table footer)")
    footer = index[-48:]
    _, pos = _varint(footer, 0)  # metaindex handle (unused)
    _, pos = _varint(footer, pos)
    index_block = _block(index, footer[pos:], index_path)

    entries: dict[str, list] = {}
    num_shards = 1
    for _, handle in _block_entries(index_block):
        for key, value in _block_entries(_block(index, handle, index_path)):
            fields = _proto_fields(value)
            if key == b"":  # BundleHeaderProto
                header = dict(fields)
                num_shards = header.get(1, 1)
                if header.get(2, 0) != 0:
                    raise CheckpointError(f"{index_path}: big-endian checkpoints are not supported")
                continue
            entries[key.decode()] = fields

    wanted = sorted(entries) if names is None else names
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise CheckpointError(f"{prefix}: missing variable(s) {', '.join(missing)}")
    shards: dict[int, bytes] = {}
    out = {}
    for name in wanted:
        entry = {1: 0, 3: 0, 4: 0, 5: 0, 6: None, 7: None}
        shape = []
        for number, value in entries[name]:
            if number == 2:
                shape = [dict(_proto_fields(dim)).get(1, 0) for n, dim in _proto_fields(value) if n == 2]
            else:
                entry[number] = value
        if entry[1] != _BUNDLE_DTYPE_FLOAT:
            if names is None:
                continue
            raise CheckpointError(f"{prefix}: variable {name} is not float32 (TF dtype {entry[1]})")
        if entry[7] is not None:
            raise CheckpointError(f"{prefix}: variable {name} is partitioned (sliced); not supported")
        shard_id, offset, size = entry[3], entry[4], entry[5]
        if shard_id not in shards:
            data_path = Path(f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}")
            if not data_path.is_file():
                raise CheckpointError(f"{data_path} not found (checkpoint data shard)")
            shards[shard_id] = data_path.read_bytes()
        raw = shards[shard_id][offset : offset + size]
        if len(raw) != size or size != 4 * int(np.prod(shape)):
            raise CheckpointError(f"{prefix}: variable {name} has {len(raw)} bytes for shape {shape}")
        if entry[6] is not None and _unmask_crc(entry[6]) != _crc32c(raw):
            raise CheckpointError(f"{prefix}: checksum mismatch in variable {name} (corrupt data file?)")
        out[name] = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    return out
