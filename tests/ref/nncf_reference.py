#!/usr/bin/python3
"""nncf_reference.py — an independent numpy model of NNCF's data-free
mixed-precision weight compression (what `optimum-cli export openvino
--weight-format int4 --group-size G --ratio R [--sym]` asks of
nncf.compress_weights), used by tests/test_onnx_ratio.c to check what
`phiq convert --format onnx --ratio R --group-size G` writes, value for value.

Written from NNCF's sources (openvinotoolkit/nncf at ef8e1dbd, read, not
copied): quantization/algorithms/weight_compression/algorithm.py
(get_weight_compression_parameters, _get_ratio_defining_params,
_get_backup_config, apply_mixed_precision), mixed_precision.py
(MixedPrecisionCriterion.apply, DataFreeCriterion._calc_weight_sensitivity),
weight_lowering.py (get_integer_quantization_error, do_integer_quantization,
calculate_integer_quantization_params, _calculate_signed_scale,
_calculate_integer_quantized_weight), fake_quantize.py
(calculate_scale_zero_point); the numpy reference path (not OpenVINO's
compiled one). Not from phiq's C.

The rules, as NNCF has them:
  - weights to compress: every MatMul weight and the embedding (Gather), in
    graph order; the ratio-defining ones are the MatMuls without the last one
    (lm_head); the embedding and lm_head take the backup mode (INT8_ASYM,
    per channel) unless all_layers; a tied weight is compressed once.
  - data-free sensitivity of a weight W [out, in] (reduction axis = in):
    1 / (max over rows of mean((W - Q8(W))^2) + eps(float32)), Q8 = per-channel
    INT8_ASYM; sorted ascending (stable); int4 given in that order while
    (int4 parameters + this weight's) / all ratio-defining parameters < ratio,
    stopping at the first that does not fit; ratio 1 gives all of them int4.
  - INT8_ASYM / INT4_ASYM: scale = (max - min) / (2^b - 1) (float32), |scale| <
    eps -> eps, zp = clip(0 - round(min / scale), 0, 2^b - 1),
    q = clip(round(w / scale + zp), 0, 2^b - 1).
  - INT4_SYM / INT8_SYM (signed scale): scale = (|min| >= max ? |min| : -max)
    / 2^(b-1), eps clamp, q = clip(round(w / scale), -2^(b-1), 2^(b-1) - 1).
  - round is numpy's (half to even); groups are `group_size` consecutive
    input values of a row.

The units are the Hugging Face checkpoint's tensors, as NNCF sees the model
optimum exports: per layer qkv_proj (or q, k, v: decided as one, ORT fuses
them), o_proj, gate_up_proj (or gate_proj, up_proj), down_proj.

The ONNX side is read with a minimal protobuf reader (ModelProto -> graph ->
nodes, initializers with external data), then each MatMulNBits /
GatherBlockQuantized weight is unpacked as onnxruntime reads it
(contrib-op docs: 4-bit even k in the low nibble, implicit zero point
2^(bits-1) when none is stored, packed 4-bit zero points) and compared, codes,
scales and dequantized values, bit for bit with NNCF's.

usage:
  nncf_reference.py check SRC_HF_DIR ONNX_DIR --ratio R --group-size G
                    (--sym|--asym) [--backup int8_asym|int8_sym|none]
                    [--ranking nncf|file] [--int4 nncf|any]
      --ranking file: the int4/backup choice is taken from the file (phiq's
      data-aware --calib ranking) and only its parameter share (< R) is
      checked; --int4 any: int4 weights are GPTQ's (--calib), only their
      layout and a dequantized error bound are checked. The backup weights
      are always compared value for value.
      Prints a JSON line {"ok": true, "int4": [...], "backup": [...], ...} or
      the first difference (exit 1).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import load_model  # noqa: E402  (a checkpoint's tensors as float32)

F32_EPS = np.finfo(np.float32).eps


# ---- minimal ONNX protobuf reader --------------------------------------------------------

def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b):
    """(field number, wire type, value) of one message; value = int or bytes."""
    i, out = 0, []
    while i < len(b):
        key, i = _varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 2:
            n, i = _varint(b, i)
            v = b[i:i + n]
            i += n
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError("protobuf wire type %d" % wt)
        out.append((f, wt, v))
    return out


def _ints(fields, num):
    vals = []
    for f, wt, v in fields:
        if f != num:
            continue
        if wt == 2:  # packed
            j = 0
            while j < len(v):
                x, j = _varint(v, j)
                vals.append(x)
        else:
            vals.append(v)
    return [x - (1 << 64) if x >= 1 << 63 else x for x in vals]


def read_onnx(d):
    model = open(os.path.join(d, "model.onnx"), "rb").read()
    data = open(os.path.join(d, "model.onnx.data"), "rb").read()
    graph = [v for f, wt, v in _fields(model) if f == 7][0]
    nodes, inits = [], {}
    for f, wt, v in _fields(graph):
        if f == 1:
            nf = _fields(v)
            node = {"inputs": [x.decode() for g, _, x in nf if g == 1],
                    "name": "".join(x.decode() for g, _, x in nf if g == 3),
                    "op": "".join(x.decode() for g, _, x in nf if g == 4), "attrs": {}}
            for g, _, a in nf:
                if g == 5:
                    af = _fields(a)
                    name = [x.decode() for h, _, x in af if h == 1][0]
                    ints = [x for h, _, x in af if h == 3]
                    if ints:
                        node["attrs"][name] = ints[0]
            nodes.append(node)
        elif f == 5:
            tf = _fields(v)
            name = [x.decode() for g, _, x in tf if g == 8][0]
            dims = _ints(tf, 1)
            dtype = [x for g, _, x in tf if g == 2][0]
            ext = {}
            for g, _, e in tf:
                if g == 13:
                    ef = _fields(e)
                    ext[[x.decode() for h, _, x in ef if h == 1][0]] = [x.decode() for h, _, x in ef if h == 2][0]
            raw = [x for g, _, x in tf if g == 9]
            if ext:
                off, n = int(ext.get("offset", 0)), int(ext["length"])
                raw = data[off:off + n]
            else:
                raw = raw[0] if raw else b""
            np_t = {1: np.float32, 2: np.uint8, 7: np.int64}.get(dtype)
            inits[name] = np.frombuffer(raw, dtype=np_t).reshape(dims) if np_t else None
    return nodes, inits


# ---- NNCF's integer quantization ---------------------------------------------------------

def nncf_quantize(w, bits, sym, group):
    """codes (signed for sym), scale and zero point per group, as
    do_integer_quantization computes them; w [N, K] float32."""
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    if sym:
        w_abs_min = np.abs(np.min(g, axis=2, keepdims=True))
        w_max = np.max(g, axis=2, keepdims=True)
        scale = np.where(w_abs_min >= w_max, w_abs_min, -w_max)
        scale /= 2 ** (bits - 1)
        scale = np.where(np.abs(scale) < F32_EPS, F32_EPS, scale)
        q = np.clip(np.round(g / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return q.astype(np.int32), scale.astype(np.float32), None
    mn = np.min(g, axis=2, keepdims=True)
    mx = np.max(g, axis=2, keepdims=True)
    scale = ((mx - mn) / (2 ** bits - 1)).astype(np.float32)
    scale = np.where(np.abs(scale) < F32_EPS, F32_EPS, scale)
    zp = 0 - np.round(mn / scale)
    zp = np.clip(zp.astype(np.int32), 0, 2 ** bits - 1)
    q = g / scale
    q += zp.astype(np.float32)
    q = np.clip(np.round(q), 0, 2 ** bits - 1)
    return q.astype(np.int32), scale.astype(np.float32), zp


def nncf_dequantize(q, scale, zp):
    d = (q - zp) if zp is not None else q
    return (d.astype(np.float32) * scale).reshape(q.shape[0], -1)


def int8_error(w):
    q, s, z = nncf_quantize(w, 8, False, w.shape[1])
    dq = nncf_dequantize(q, s, z)
    diff = (dq - w) ** 2
    return float(np.max(np.mean(diff, axis=1)))


# ---- the model's units -------------------------------------------------------------------

def units(hf, cfg):
    """[(name, [(onnx node kind, W)])] in graph order."""
    out = []
    F = cfg["intermediate_size"]
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        if p + "self_attn.qkv_proj.weight" in hf:
            qkv = hf[p + "self_attn.qkv_proj.weight"]
        else:
            qkv = np.concatenate([hf[p + "self_attn.%s_proj.weight" % c] for c in "qkv"])
        out.append((p + "qkv", [("attn/qkv_proj", qkv)]))
        out.append((p + "o", [("attn/o_proj", hf[p + "self_attn.o_proj.weight"])]))
        if p + "mlp.gate_up_proj.weight" in hf:
            gu = hf[p + "mlp.gate_up_proj.weight"]
            out.append((p + "gate_up", [("mlp/gate_proj", gu[:F]), ("mlp/up_proj", gu[F:])]))
        else:
            out.append((p + "gate", [("mlp/gate_proj", hf[p + "mlp.gate_proj.weight"])]))
            out.append((p + "up", [("mlp/up_proj", hf[p + "mlp.up_proj.weight"])]))
        out.append((p + "down", [("mlp/down_proj", hf[p + "mlp.down_proj.weight"])]))
    return out


def decide(us, ratio):
    params = [sum(w.size for _, w in parts) for _, parts in us]
    total = sum(params)
    if ratio >= 1:
        return set(range(len(us))), [0.0] * len(us)
    errs = [max(int8_error(w) for _, w in parts) for _, parts in us]
    scores = [1 / (e + float(F32_EPS)) for e in errs]
    chosen, in4 = set(), 0
    for i, _ in sorted(enumerate(scores), reverse=False, key=lambda x: x[1]):
        if (in4 + params[i]) / total >= ratio:
            break
        chosen.add(i)
        in4 += params[i]
    return chosen, errs


# ---- reading MatMulNBits / GatherBlockQuantized weights ----------------------------------

def codes_of(X, n, bits):
    """bytes [n, *] -> codes [n, *] as int32 (4 bits: two per byte, low nibble first)."""
    X = X.reshape(n, -1)
    if bits != 4:
        return X.astype(np.int32)
    c = np.empty((n, X.shape[1] * 2), dtype=np.int32)
    c[:, 0::2] = X & 0xF
    c[:, 1::2] = X >> 4
    return c


def unpack(B, scales, zp, bits, bs, n, k, sym):
    """stored codes [n, k], scale per element [n, k], zero point per element."""
    codes = codes_of(B, n, bits)[:, :k]
    kb = k // bs
    s = np.repeat(scales.reshape(n, kb), bs, axis=1)
    if sym:
        z = np.full((n, k), 2 ** (bits - 1), dtype=np.int32)
    else:
        z = np.repeat(codes_of(zp, n, bits)[:, :kb], bs, axis=1)
    return codes, s, z


def expect(w, bits, sym, group):
    """NNCF's stored codes, scale and zero point per element [n, k]."""
    n, k = w.shape
    q, s, z = nncf_quantize(w, bits, sym, group)
    codes = q.reshape(n, k) + (2 ** (bits - 1) if sym else 0)
    sc = np.repeat(s.reshape(n, k // group), group, axis=1)
    zz = np.full((n, k), 2 ** (bits - 1)) if sym else np.repeat(z.reshape(n, k // group), group, axis=1)
    return codes, sc, zz


def compare(what, got, want):
    gc, gs, gz = got
    wc, ws, wz = want
    if not np.array_equal(gc, wc):
        r, c = np.argwhere(gc != wc)[0]
        return "%s: code [%d,%d] is %d, NNCF's %d (%d differ)" % (what, r, c, gc[r, c], wc[r, c], int((gc != wc).sum()))
    if not np.array_equal(gs.view(np.uint32), ws.astype(np.float32).view(np.uint32)):
        r, c = np.argwhere(gs != ws)[0]
        return "%s: scale at [%d,%d] is %r, NNCF's %r" % (what, r, c, float(gs[r, c]), float(ws[r, c]))
    if not np.array_equal(gz, wz):
        r, c = np.argwhere(gz != wz)[0]
        return "%s: zero point at [%d,%d] is %d, NNCF's %d" % (what, r, c, gz[r, c], wz[r, c])
    return None


def main():
    a = sys.argv[1:]
    if len(a) < 3 or a[0] != "check":
        print(__doc__, file=sys.stderr)
        return 2
    src, od = a[1], a[2]
    opt = {"--ratio": None, "--group-size": None, "--backup": "int8_asym", "--ranking": "nncf", "--int4": "nncf"}
    sym = True
    i = 3
    while i < len(a):
        if a[i] in ("--sym", "--asym"):
            sym = a[i] == "--sym"
            i += 1
        else:
            opt[a[i]] = a[i + 1]
            i += 2
    ratio, G, backup = float(opt["--ratio"]), int(opt["--group-size"]), opt["--backup"]
    cfg = json.load(open(os.path.join(src, "config.json")))
    _, hf = load_model(src)
    us = units(hf, cfg)
    nodes, inits = read_onnx(od)
    mnb = {}
    for nd in nodes:
        if nd["op"] == "MatMulNBits":
            mnb[nd["name"].rsplit("/MatMul", 1)[0]] = nd
    fail = None
    if opt["--ranking"] == "nncf":
        chosen, errs = decide(us, ratio)
    else:  # from the file
        chosen = set()
        for ui, (name, parts) in enumerate(us):
            layer = int(name.split(".")[2])
            nd = mnb.get("/model/layers.%d/%s" % (layer, parts[0][0]))
            if nd is not None and nd["attrs"].get("bits") == 4:
                chosen.add(ui)
        errs = [0.0] * len(us)
    params = [sum(w.size for _, w in parts) for _, parts in us]
    total, in4 = sum(params), sum(params[i] for i in chosen)
    if ratio < 1 and in4 > 0 and not in4 / total < ratio:
        fail = "int4 share %.4f is not below the ratio %g" % (in4 / total, ratio)
    n_checked = 0

    def check_weight(what, nd, w, bits, sym_, group):
        nonlocal n_checked
        n, k = w.shape
        if nd is None:
            return "%s: no MatMulNBits node" % what
        at = nd["attrs"]
        if at.get("bits") != bits:
            return "%s: %s bits, NNCF gives it %d" % (what, at.get("bits"), bits)
        if at.get("K") != k or at.get("N") != n:
            return "%s: K/N %s/%s, weight [%d, %d]" % (what, at.get("K"), at.get("N"), n, k)
        bs = at["block_size"]
        ins = nd["inputs"]
        stored_sym = len(ins) < 4 or not ins[3]
        if stored_sym != sym_:
            return "%s: %s, expected %s" % (what, "symmetric" if stored_sym else "zero points", "sym" if sym_ else "asym")
        got = unpack(inits[ins[1]], inits[ins[2]], None if stored_sym else inits[ins[3]], bits, bs, n, k, stored_sym)
        n_checked += 1
        if group is None:  # GPTQ's int4 (--ranking any): layout and a sane error only
            dq = ((got[0] - got[2]).astype(np.float32) * got[1])
            step = np.abs(got[1]).max()
            return None if np.abs(dq - w).max() <= 16 * step else "%s: dequantized far from the weight" % what
        return compare(what, got, expect(w, bits, sym_, group))

    b8 = {"int8_asym": (8, False), "int8_sym": (8, True)}.get(backup)
    for ui, (name, parts) in enumerate(us):
        if fail:
            break
        layer = int(name.split(".")[2])
        for kind, w in parts:
            nd = mnb.get("/model/layers.%d/%s" % (layer, kind))
            what = "layer %d %s" % (layer, kind)
            if ui in chosen:
                fail = check_weight(what, nd, w, 4, sym, G if opt["--int4"] == "nncf" else None)
            elif b8:
                fail = check_weight(what, nd, w, b8[0], b8[1], w.shape[1])
            elif nd is not None:
                fail = "%s: quantized, but backup is none" % what
            if fail:
                break
    tied = cfg.get("tie_word_embeddings", False)
    emb = hf["model.embed_tokens.weight"]
    head = emb if tied else hf["lm_head.weight"]
    if not fail and b8:
        fail = check_weight("lm_head", mnb.get("/lm_head"), head, b8[0], b8[1], head.shape[1])
    if not fail:
        gbq = [nd for nd in nodes if nd["op"] == "GatherBlockQuantized"]
        if b8:
            stem = "lm_head.MatMul.weight" if tied else "model.embed_tokens.weight"
            if len(gbq) != 1 or gbq[0]["attrs"].get("bits") != 8:
                fail = "embedding: expected one 8-bit GatherBlockQuantized"
            else:
                bs = gbq[0]["attrs"]["block_size"]
                zpn = stem + "_zero_points"
                got = unpack(inits[stem + "_Q8"], inits[stem + "_scales"], inits.get(zpn), 8, bs, emb.shape[0],
                             emb.shape[1], b8[1])
                fail = compare("embedding", got, expect(emb, 8, b8[1], emb.shape[1]))
                n_checked += 1
        elif gbq or "model.embed_tokens.weight" not in inits:
            fail = "embedding: backup none should keep the float table"
        elif not np.array_equal(inits["model.embed_tokens.weight"], emb):
            fail = "embedding: float table differs"
    if fail:
        print("FAIL " + fail)
        return 1
    print(json.dumps({"ok": True, "weights_checked": n_checked, "int4": [us[i][0] for i in sorted(chosen)],
                      "backup": [us[i][0] for i in range(len(us)) if i not in chosen],
                      "int4_share": in4 / total, "int8_errors": {us[i][0]: errs[i] for i in range(len(us))}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
