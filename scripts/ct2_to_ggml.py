#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (e.g. tiny.en) into whisper.cpp's ggml `.bin` file.

The output is the legacy ggml container that whisper.cpp's `whisper_model_load`
reads (the same layout `models/convert-pt-to-ggml.py` writes), optionally plus a
q8_0-quantised variant equivalent to what whisper.cpp's `quantize` tool produces.

Usage:
    python3 scripts/ct2_to_ggml.py \
        --ct2-dir DIR \
        --assets-dir OPENAI_WHISPER_SDIST/whisper/assets \
        --out models/ggml-tiny.en.bin \
        [--q8_0 models/ggml-tiny.en-q8_0.bin]

Inputs:
    --ct2-dir     directory containing CTranslate2's `model.bin` (WhisperSpec); if a
                  `vocabulary.txt` is next to it, it is used only as a sanity check.
    --assets-dir  openai-whisper's `whisper/assets` directory: `mel_filters.npz` and
                  `gpt2.tiktoken` (or `multilingual.tiktoken` for multilingual models).

Output layout (all integers little-endian int32 unless noted):
    magic 0x67676d6c
    hparams: n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
             n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
    mel filters: n_mel n_fft, then n_mel*n_fft float32
    tokenizer: count, then per token: uint32 length + raw bytes
    tensors, each: n_dims, name_len, ttype, ne[0..n_dims) (innermost first),
                   name bytes, raw data

Only numpy is required.
"""

import argparse
import base64
import hashlib
import os
import struct
import sys
import time

try:
    import numpy as np
except ImportError:  # pragma: no cover
    sys.stderr.write("error: numpy is required (pip install numpy)\n")
    sys.exit(2)


GGML_MAGIC = 0x67676D6C
GGML_QNT_VERSION = 2
GGML_QNT_VERSION_FACTOR = 1000

# ggml_type ids used in tensor headers
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q8_0 = 8

# ggml_ftype ids used in hparams
GGML_FTYPE_MOSTLY_F16 = 1
GGML_FTYPE_MOSTLY_Q8_0 = 7

QK8_0 = 32

# CTranslate2 DataType enum (include/ctranslate2/types.h)
CT2_DTYPES = {
    0: ("float32", np.dtype("<f4")),
    1: ("int8", np.dtype("i1")),
    2: ("int16", np.dtype("<i2")),
    3: ("int32", np.dtype("<i4")),
    4: ("float16", np.dtype("<f2")),
    5: ("bfloat16", None),  # decoded manually
}

# Tensors that whisper.cpp keeps in f32 even though they are 2-D, and that the
# quantize tool never quantises.
F32_2D_TENSORS = (
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
)


class ConversionError(Exception):
    pass


VERBOSE = False


def log(msg):
    print(msg, flush=True)


def detail(msg):
    if VERBOSE:
        print(msg, flush=True)


# --------------------------------------------------------------------------
# CTranslate2 model.bin reader
# --------------------------------------------------------------------------

class Ct2Model:
    """Minimal reader of CTranslate2's binary model format (binary versions 1-6)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self._buf = f.read()
        self._pos = 0
        self.variables = {}  # name -> (dtype_name, shape, bytes)
        self.aliases = {}  # alias -> target
        self._parse(path)

    def _take(self, n):
        if self._pos + n > len(self._buf):
            raise ConversionError(
                "truncated CTranslate2 model file at offset %d (wanted %d bytes)" % (self._pos, n)
            )
        b = self._buf[self._pos:self._pos + n]
        self._pos += n
        return b

    def _u8(self):
        return self._take(1)[0]

    def _u16(self):
        return struct.unpack("<H", self._take(2))[0]

    def _u32(self):
        return struct.unpack("<I", self._take(4))[0]

    def _str(self):
        n = self._u16()
        if n == 0:
            raise ConversionError("invalid zero-length string in CTranslate2 model")
        raw = self._take(n)
        return raw[:-1].decode("utf-8")  # stored with a trailing NUL

    def _parse(self, path):
        self.binary_version = self._u32()
        if self.binary_version < 1 or self.binary_version > 6:
            raise ConversionError(
                "%s: unsupported CTranslate2 binary version %d (expected 1..6)" % (path, self.binary_version)
            )
        if self.binary_version >= 2:
            self.spec_name = self._str()
            self.spec_revision = self._u32()
        else:
            self.spec_name = ""
            self.spec_revision = 1

        count = self._u32()
        for _ in range(count):
            name = self._str()
            rank = self._u8()
            shape = tuple(self._u32() for _ in range(rank))
            if self.binary_version >= 4:
                type_id = self._u8()
                if type_id not in CT2_DTYPES:
                    raise ConversionError("variable %s: unknown CTranslate2 type id %d" % (name, type_id))
                dtype_name = CT2_DTYPES[type_id][0]
                num_bytes = self._u32()
            else:
                item_size = self._u8()
                dtype_name = {4: "float32", 2: "int16", 1: "int8"}.get(item_size)
                if dtype_name is None:
                    raise ConversionError("variable %s: unsupported item size %d" % (name, item_size))
                num_bytes = self._u32() * item_size
            data = self._take(num_bytes)
            self.variables[name] = (dtype_name, shape, data)

        if self.binary_version >= 3:
            for _ in range(self._u32()):
                alias = self._str()
                target = self._str()
                self.aliases[alias] = target

        if self._pos != len(self._buf):
            raise ConversionError(
                "%s: %d trailing bytes after the alias table; not a CTranslate2 model?"
                % (path, len(self._buf) - self._pos)
            )

    def _resolve(self, name):
        seen = set()
        while name in self.aliases and name not in self.variables:
            if name in seen:
                raise ConversionError("alias loop at %s" % name)
            seen.add(name)
            name = self.aliases[name]
        return name

    def has(self, name):
        return self._resolve(name) in self.variables

    def raw(self, name):
        real = self._resolve(name)
        if real not in self.variables:
            raise ConversionError("CTranslate2 model has no variable '%s'" % name)
        dtype_name, shape, data = self.variables[real]
        if dtype_name == "bfloat16":
            u16 = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
            arr = u16.view(np.float32)
        else:
            np_dtype = {n: d for n, d in CT2_DTYPES.values()}[dtype_name]
            arr = np.frombuffer(data, dtype=np_dtype)
        expected = int(np.prod(shape)) if shape else 1
        if arr.size != expected:
            raise ConversionError(
                "variable %s: payload has %d elements, shape %s needs %d" % (name, arr.size, shape, expected)
            )
        return dtype_name, arr.reshape(shape)

    def scalar_int(self, name):
        dtype_name, arr = self.raw(name)
        if arr.shape != ():
            raise ConversionError("variable %s is not a scalar" % name)
        return int(arr)

    def weight(self, name):
        """Return a floating point tensor (float16 or float32 numpy array).

        int8/int16 weights (CTranslate2 quantisation) are dequantised with the
        companion `<name>_scale` variable (value / scale, per output row).
        """
        dtype_name, arr = self.raw(name)
        if dtype_name in ("float16", "float32"):
            return arr
        if dtype_name == "bfloat16":
            return arr.astype(np.float32)
        if dtype_name in ("int8", "int16"):
            scale_name = name + "_scale"
            if not self.has(scale_name):
                raise ConversionError(
                    "variable %s is %s but has no %s; cannot dequantise" % (name, dtype_name, scale_name)
                )
            _, scale = self.raw(scale_name)
            scale = np.asarray(scale, dtype=np.float32)
            values = arr.astype(np.float32)
            if scale.ndim == 0:
                out = values / scale
            else:
                flat = values.reshape(values.shape[0], -1)
                out = (flat / scale.reshape(-1, 1)).reshape(values.shape)
            log("  dequantised %s (%s) -> float32" % (name, dtype_name))
            return out.astype(np.float32)
        raise ConversionError("variable %s has unsupported type %s for a weight" % (name, dtype_name))


# --------------------------------------------------------------------------
# mapping CTranslate2 WhisperSpec -> whisper.cpp tensor names
# --------------------------------------------------------------------------

def count_layers(model, prefix):
    n = 0
    while model.has("%s/layer_%d/ffn/linear_0/weight" % (prefix, n)):
        n += 1
    return n


def split_rows(mat, parts, what):
    rows = mat.shape[0]
    if rows % parts:
        raise ConversionError("%s: %d rows cannot be split in %d parts" % (what, rows, parts))
    step = rows // parts
    return [mat[i * step:(i + 1) * step] for i in range(parts)]


def check_zero(arr, what):
    if np.any(np.asarray(arr, dtype=np.float32) != 0):
        raise ConversionError(
            "%s is non-zero but whisper.cpp has no tensor for it (whisper's key projection has no bias)" % what
        )


def linear(model, src, dst, tensors):
    tensors.append((dst + ".weight", model.weight(src + "/weight")))
    tensors.append((dst + ".bias", model.weight(src + "/bias")))


def layer_norm(model, src, dst, tensors):
    tensors.append((dst + ".weight", model.weight(src + "/gamma")))
    tensors.append((dst + ".bias", model.weight(src + "/beta")))


def self_attention(model, src, dst, tensors):
    """CT2 self-attention: linear_0 = fused [q; k; v], linear_1 = out."""
    qkv_w = model.weight(src + "/linear_0/weight")
    qkv_b = model.weight(src + "/linear_0/bias")
    q_w, k_w, v_w = split_rows(qkv_w, 3, src + "/linear_0/weight")
    q_b, k_b, v_b = split_rows(qkv_b, 3, src + "/linear_0/bias")
    check_zero(k_b, src + " key bias")
    tensors.append((dst + ".query.weight", q_w))
    tensors.append((dst + ".query.bias", q_b))
    tensors.append((dst + ".key.weight", k_w))
    tensors.append((dst + ".value.weight", v_w))
    tensors.append((dst + ".value.bias", v_b))
    linear(model, src + "/linear_1", dst + ".out", tensors)


def cross_attention(model, src, dst, tensors):
    """CT2 encoder-decoder attention: linear_0 = q, linear_1 = fused [k; v], linear_2 = out."""
    linear(model, src + "/linear_0", dst + ".query", tensors)
    kv_w = model.weight(src + "/linear_1/weight")
    kv_b = model.weight(src + "/linear_1/bias")
    k_w, v_w = split_rows(kv_w, 2, src + "/linear_1/weight")
    k_b, v_b = split_rows(kv_b, 2, src + "/linear_1/bias")
    check_zero(k_b, src + " key bias")
    tensors.append((dst + ".key.weight", k_w))
    tensors.append((dst + ".value.weight", v_w))
    tensors.append((dst + ".value.bias", v_b))
    linear(model, src + "/linear_2", dst + ".out", tensors)


def check_flag(model, name, expected):
    if model.has(name):
        value = model.scalar_int(name)
        if value != expected:
            raise ConversionError(
                "unsupported model: %s = %d (expected %d for OpenAI Whisper)" % (name, value, expected)
            )


def build_tensors(model):
    """Return (hparams dict, ordered list of (ggml_name, numpy array))."""
    if model.spec_name != "WhisperSpec":
        raise ConversionError("CTranslate2 model spec is '%s', expected 'WhisperSpec'" % model.spec_name)

    # Sanity checks for options that would change the maths.
    check_flag(model, "decoder/scale_embeddings", 0)
    check_flag(model, "decoder/pre_norm", 1)
    check_flag(model, "decoder/activation", 3)  # GELU (erf)
    check_flag(model, "decoder/alibi", 0)
    for name in model.variables:
        if name.endswith("queries_scale"):
            raise ConversionError("unsupported: %s present (pre-scaled queries)" % name)
        if "/relative_" in name or "rotary" in name:
            raise ConversionError("unsupported variable %s for a Whisper model" % name)
    if model.has("decoder/projection/bias"):
        raise ConversionError("unsupported: decoder/projection/bias present (whisper.cpp has no output bias)")
    if model.has("decoder/projection/weight"):
        if model._resolve("decoder/projection/weight") != model._resolve("decoder/embeddings/weight"):
            proj = np.asarray(model.weight("decoder/projection/weight"), dtype=np.float32)
            emb = np.asarray(model.weight("decoder/embeddings/weight"), dtype=np.float32)
            if proj.shape != emb.shape or not np.array_equal(proj, emb):
                raise ConversionError(
                    "decoder/projection/weight is not tied to decoder/embeddings/weight; whisper.cpp requires tying"
                )

    n_audio_layer = count_layers(model, "encoder")
    n_text_layer = count_layers(model, "decoder")
    if n_audio_layer == 0 or n_text_layer == 0:
        raise ConversionError("could not find encoder/decoder layers in the CTranslate2 model")

    emb_name = "decoder/embeddings/weight"
    if not model.has(emb_name) and model.has("decoder/embeddings/weights"):
        emb_name = "decoder/embeddings/weights"
    token_embedding = model.weight(emb_name)
    enc_pe = model.weight("encoder/position_encodings/encodings")
    dec_pe = model.weight("decoder/position_encodings/encodings")
    conv1_w = model.weight("encoder/conv1/weight")

    hp = {
        "n_vocab": token_embedding.shape[0],
        "n_audio_ctx": enc_pe.shape[0],
        "n_audio_state": enc_pe.shape[1],
        "n_audio_head": model.scalar_int("encoder/num_heads"),
        "n_audio_layer": n_audio_layer,
        "n_text_ctx": dec_pe.shape[0],
        "n_text_state": token_embedding.shape[1],
        "n_text_head": model.scalar_int("decoder/num_heads"),
        "n_text_layer": n_text_layer,
        "n_mels": conv1_w.shape[1],
    }
    if hp["n_audio_state"] != hp["n_text_state"]:
        raise ConversionError("n_audio_state != n_text_state; whisper.cpp requires them equal")

    t = []
    # Order follows OpenAI's state_dict, as convert-pt-to-ggml.py emits it.
    t.append(("encoder.positional_embedding", enc_pe))
    t.append(("encoder.conv1.weight", conv1_w))
    t.append(("encoder.conv1.bias", model.weight("encoder/conv1/bias")))
    t.append(("encoder.conv2.weight", model.weight("encoder/conv2/weight")))
    t.append(("encoder.conv2.bias", model.weight("encoder/conv2/bias")))
    for i in range(n_audio_layer):
        src = "encoder/layer_%d" % i
        dst = "encoder.blocks.%d" % i
        self_attention(model, src + "/self_attention", dst + ".attn", t)
        layer_norm(model, src + "/self_attention/layer_norm", dst + ".attn_ln", t)
        linear(model, src + "/ffn/linear_0", dst + ".mlp.0", t)
        linear(model, src + "/ffn/linear_1", dst + ".mlp.2", t)
        layer_norm(model, src + "/ffn/layer_norm", dst + ".mlp_ln", t)
    layer_norm(model, "encoder/layer_norm", "encoder.ln_post", t)

    t.append(("decoder.positional_embedding", dec_pe))
    t.append(("decoder.token_embedding.weight", token_embedding))
    for i in range(n_text_layer):
        src = "decoder/layer_%d" % i
        dst = "decoder.blocks.%d" % i
        self_attention(model, src + "/self_attention", dst + ".attn", t)
        layer_norm(model, src + "/self_attention/layer_norm", dst + ".attn_ln", t)
        cross_attention(model, src + "/attention", dst + ".cross_attn", t)
        layer_norm(model, src + "/attention/layer_norm", dst + ".cross_attn_ln", t)
        linear(model, src + "/ffn/linear_0", dst + ".mlp.0", t)
        linear(model, src + "/ffn/linear_1", dst + ".mlp.2", t)
        layer_norm(model, src + "/ffn/layer_norm", dst + ".mlp_ln", t)
    layer_norm(model, "decoder/layer_norm", "decoder.ln", t)

    check_shapes(hp, t)
    return hp, t


def expected_shapes(hp):
    """numpy (row-major) shapes whisper.cpp expects, per tensor name."""
    s = hp["n_audio_state"]
    d = hp["n_text_state"]
    exp = {
        "encoder.positional_embedding": (hp["n_audio_ctx"], s),
        "encoder.conv1.weight": (s, hp["n_mels"], 3),
        "encoder.conv1.bias": (s,),
        "encoder.conv2.weight": (s, s, 3),
        "encoder.conv2.bias": (s,),
        "encoder.ln_post.weight": (s,),
        "encoder.ln_post.bias": (s,),
        "decoder.positional_embedding": (hp["n_text_ctx"], d),
        "decoder.token_embedding.weight": (hp["n_vocab"], d),
        "decoder.ln.weight": (d,),
        "decoder.ln.bias": (d,),
    }

    def block(prefix, n, attn_names):
        for a in attn_names:
            for p in ("query", "key", "value", "out"):
                exp["%s.%s.%s.weight" % (prefix, a, p)] = (n, n)
                if p != "key":
                    exp["%s.%s.%s.bias" % (prefix, a, p)] = (n,)
            exp["%s.%s_ln.weight" % (prefix, a)] = (n,)
            exp["%s.%s_ln.bias" % (prefix, a)] = (n,)
        exp[prefix + ".mlp.0.weight"] = (4 * n, n)
        exp[prefix + ".mlp.0.bias"] = (4 * n,)
        exp[prefix + ".mlp.2.weight"] = (n, 4 * n)
        exp[prefix + ".mlp.2.bias"] = (n,)
        exp[prefix + ".mlp_ln.weight"] = (n,)
        exp[prefix + ".mlp_ln.bias"] = (n,)

    for i in range(hp["n_audio_layer"]):
        block("encoder.blocks.%d" % i, s, ("attn",))
    for i in range(hp["n_text_layer"]):
        block("decoder.blocks.%d" % i, d, ("attn", "cross_attn"))
    return exp


def check_shapes(hp, tensors):
    exp = expected_shapes(hp)
    names = [n for n, _ in tensors]
    if len(set(names)) != len(names):
        raise ConversionError("internal error: duplicate tensor names")
    missing = sorted(set(exp) - set(names))
    extra = sorted(set(names) - set(exp))
    if missing or extra:
        raise ConversionError("tensor set mismatch: missing %s, unexpected %s" % (missing, extra))
    for name, arr in tensors:
        if tuple(arr.shape) != exp[name]:
            raise ConversionError("tensor %s has shape %s, whisper.cpp expects %s" % (name, arr.shape, exp[name]))


# --------------------------------------------------------------------------
# assets: mel filters and tokenizer
# --------------------------------------------------------------------------

def load_mel_filters(assets_dir, n_mels):
    path = os.path.join(assets_dir, "mel_filters.npz")
    if not os.path.isfile(path):
        raise ConversionError("missing input: %s" % path)
    with np.load(path) as f:
        key = "mel_%d" % n_mels
        if key not in f.files:
            raise ConversionError("%s has no '%s' (has %s)" % (path, key, f.files))
        filters = np.ascontiguousarray(f[key], dtype="<f4")
    if filters.ndim != 2 or filters.shape[0] != n_mels:
        raise ConversionError("unexpected mel filter shape %s" % (filters.shape,))
    return filters


def load_tiktoken(assets_dir, n_vocab):
    multilingual = n_vocab >= 51865
    fname = "multilingual.tiktoken" if multilingual else "gpt2.tiktoken"
    path = os.path.join(assets_dir, fname)
    if not os.path.isfile(path):
        raise ConversionError("missing input: %s" % path)
    tokens = []
    with open(path, "rb") as f:
        for lineno, line in enumerate(f.read().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ConversionError("%s:%d: malformed line" % (path, lineno))
            tok, rank = base64.b64decode(parts[0]), int(parts[1])
            if rank != len(tokens):
                raise ConversionError("%s:%d: rank %d out of sequence (expected %d)" % (path, lineno, rank, len(tokens)))
            tokens.append(tok)
    if len(tokens) > n_vocab:
        raise ConversionError("%s has %d tokens, more than n_vocab=%d" % (path, len(tokens), n_vocab))
    return path, tokens


def _gpt2_byte_decoder():
    # GPT-2 byte-level BPE: printable bytes map to themselves, the rest to U+0100.. in order.
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping = {}
    extra = 0
    for b in range(256):
        if b in keep:
            mapping[chr(b)] = b
        else:
            mapping[chr(256 + extra)] = b
            extra += 1
    return mapping


def cross_check_vocabulary(ct2_dir, tokens):
    """Compare CT2's vocabulary.txt (byte-level BPE strings) with the tiktoken ranks."""
    path = os.path.join(ct2_dir, "vocabulary.txt")
    if not os.path.isfile(path):
        log("  (no vocabulary.txt next to model.bin; skipping vocabulary cross-check)")
        return
    dec = _gpt2_byte_decoder()
    with open(path, "r", encoding="utf-8") as f:
        words = f.read().split("\n")
    if words and words[-1] == "":
        words.pop()
    mismatches = 0
    for i, tok in enumerate(tokens):
        if i >= len(words):
            mismatches += 1
            continue
        try:
            b = bytes(dec[c] for c in words[i])
        except KeyError:
            mismatches += 1
            continue
        if b != tok:
            mismatches += 1
    if mismatches:
        raise ConversionError(
            "%s disagrees with the tiktoken vocabulary in %d of %d tokens; wrong tokenizer for this model?"
            % (path, mismatches, len(tokens))
        )
    log("  vocabulary.txt agrees with tiktoken ranks 0..%d (%d entries total)" % (len(tokens) - 1, len(words)))


# --------------------------------------------------------------------------
# ggml writer
# --------------------------------------------------------------------------

def quantize_q8_0(values):
    """ggml block_q8_0 reference quantisation (quantize_row_q8_0_ref), rows along the last axis."""
    x = np.ascontiguousarray(values, dtype=np.float32).reshape(-1, QK8_0)
    amax = np.max(np.abs(x), axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    scaled = (x * inv[:, None]).astype(np.float32)
    # roundf(): round half away from zero (numpy's rint is half-to-even)
    q = np.copysign(np.floor(np.abs(scaled).astype(np.float64) + 0.5), scaled).astype(np.int8)
    out = np.empty(x.shape[0], dtype=[("d", "<f2"), ("qs", "i1", (QK8_0,))])
    out["d"] = d.astype(np.float16)
    out["qs"] = q
    return out.tobytes()


def tensor_payload(name, arr, quantize):
    """Return (ggml ne list, ggml type, bytes) for one tensor."""
    data = np.asarray(arr)
    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        data = data.reshape(data.shape[0], 1)  # whisper.cpp wants ne = [1, n_state]
    n_dims = data.ndim
    ne = list(reversed(data.shape))

    if n_dims < 2 or name in F32_2D_TENSORS:
        return ne, GGML_TYPE_F32, np.ascontiguousarray(data, dtype="<f4").tobytes()

    if quantize and n_dims == 2:
        if ne[0] % QK8_0:
            raise ConversionError("%s: row length %d not a multiple of %d for q8_0" % (name, ne[0], QK8_0))
        # the quantize tool reads the f16 file, so quantise the f16-rounded values
        f16 = np.ascontiguousarray(data, dtype="<f2")
        return ne, GGML_TYPE_Q8_0, quantize_q8_0(f16.astype(np.float32))

    return ne, GGML_TYPE_F16, np.ascontiguousarray(data, dtype="<f2").tobytes()


def write_ggml(path, hp, filters, tokens, tensors, quantize):
    ftype = GGML_FTYPE_MOSTLY_F16
    if quantize:
        ftype = GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + GGML_FTYPE_MOSTLY_Q8_0
    tmp = path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        total = _write_ggml_file(tmp, ftype, hp, filters, tokens, tensors, quantize)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
    return ftype, total


def _write_ggml_file(tmp, ftype, hp, filters, tokens, tensors, quantize):
    total = 0
    with open(tmp, "wb") as f:
        f.write(struct.pack("<i", GGML_MAGIC))
        for key in ("n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
                    "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer", "n_mels"):
            f.write(struct.pack("<i", int(hp[key])))
        f.write(struct.pack("<i", ftype))

        f.write(struct.pack("<ii", filters.shape[0], filters.shape[1]))
        f.write(filters.tobytes())

        f.write(struct.pack("<i", len(tokens)))
        for tok in tokens:
            f.write(struct.pack("<I", len(tok)))
            f.write(tok)

        type_names = {GGML_TYPE_F32: "f32", GGML_TYPE_F16: "f16", GGML_TYPE_Q8_0: "q8_0"}
        for name, arr in tensors:
            ne, ttype, payload = tensor_payload(name, arr, quantize)
            name_b = name.encode("utf-8")
            f.write(struct.pack("<iii", len(ne), len(name_b), ttype))
            f.write(struct.pack("<%di" % len(ne), *ne))
            f.write(name_b)
            f.write(payload)
            total += len(payload)
            detail("  %-40s ne=%-18s %-4s %9d bytes" % (name, ne, type_names[ttype], len(payload)))
    return total


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert a CTranslate2 Whisper model to whisper.cpp ggml format.")
    ap.add_argument("--ct2-dir", required=True, help="directory with CTranslate2 model.bin (and vocabulary.txt)")
    ap.add_argument("--assets-dir", required=True,
                    help="openai-whisper 'whisper/assets' dir (mel_filters.npz, gpt2.tiktoken)")
    ap.add_argument("--out", required=True, help="output ggml f16 model path")
    ap.add_argument("--q8_0", dest="q8_0", default=None, help="also write a q8_0-quantised model here")
    ap.add_argument("--verbose", action="store_true", help="print every tensor written")
    args = ap.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose

    t0 = time.time()
    try:
        model_path = os.path.join(args.ct2_dir, "model.bin")
        if not os.path.isdir(args.ct2_dir):
            raise ConversionError("missing input: --ct2-dir %s is not a directory" % args.ct2_dir)
        if not os.path.isfile(model_path):
            raise ConversionError("missing input: %s" % model_path)
        if not os.path.isdir(args.assets_dir):
            raise ConversionError("missing input: --assets-dir %s is not a directory" % args.assets_dir)
        for req in ("mel_filters.npz",):
            if not os.path.isfile(os.path.join(args.assets_dir, req)):
                raise ConversionError("missing input: %s" % os.path.join(args.assets_dir, req))

        log("reading %s" % model_path)
        model = Ct2Model(model_path)
        log("  binary version %d, spec %s revision %d, %d variables, %d aliases"
            % (model.binary_version, model.spec_name, model.spec_revision,
               len(model.variables), len(model.aliases)))

        hp, tensors = build_tensors(model)
        log("hparams: " + ", ".join("%s=%d" % (k, v) for k, v in hp.items()))

        filters = load_mel_filters(args.assets_dir, hp["n_mels"])
        log("mel filters: %s from %s" % (filters.shape, os.path.join(args.assets_dir, "mel_filters.npz")))
        tok_path, tokens = load_tiktoken(args.assets_dir, hp["n_vocab"])
        log("tokenizer: %d tokens from %s (whisper.cpp adds the %d special tokens itself)"
            % (len(tokens), tok_path, hp["n_vocab"] - len(tokens)))
        cross_check_vocabulary(args.ct2_dir, tokens)

        outputs = [(args.out, False)]
        if args.q8_0:
            outputs.append((args.q8_0, True))
        for path, quant in outputs:
            log("writing %s (%s)" % (path, "q8_0" if quant else "f16"))
            ftype, total = write_ggml(path, hp, filters, tokens, tensors, quant)
            log("  ftype=%d, %d tensors, tensor data %.2f MB, file %d bytes, sha256 %s"
                % (ftype, len(tensors), total / 1e6, os.path.getsize(path), sha256(path)))
    except ConversionError as e:
        sys.stderr.write("error: %s\n" % e)
        return 1
    except (OSError, ValueError) as e:
        sys.stderr.write("error: %s\n" % e)
        return 1
    log("done in %.1f s" % (time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
