#!/usr/bin/python3
"""mlx_reference.py — an independent numpy model of what `mlx_lm.convert -q`
(mlx 0.32 / mlx-lm 0.32) writes for a Hugging Face Phi checkpoint, used by
tests/test_mlx.c to check phiq's MLX export bit for bit. Written from MLX's
sources (mlx/backend/metal/kernels/quantized.h: affine_quantize, the GPU
kernel a Mac runs; mlx/ops.cpp; mlx/io/safetensors.cpp) and mlx-lm's
(mlx_lm/convert.py: mixed_quant_predicate_builder, mlx_lm/utils.py:
quantize_model, save_model, make_shards, save_config; mlx_lm/models/phi3.py,
phi.py, phimoe.py and its sanitize()), not from phiq's C.

usage:
  mlx_reference.py check SRC_HF_DIR MLX_DIR:BITS:GROUP[:RECIPE] ...
      for each directory (converted from SRC_HF_DIR with those settings) compares every tensor (name, dtype, shape, bytes), the safetensors
      metadata, the index and config.json's quantization entries; prints
      "ok N tensors" or the first difference (exit 1)
  mlx_reference.py dequant SRC_HF_DIR OUT_DIR [_:BITS:GROUP[:RECIPE]]
      writes the reference-quantized model dequantized to float32 as an HF
      checkpoint (HF names, experts apart), for evaluation
  mlx_reference.py read MLX_DIR OUT_DIR
      reads any MLX affine directory (e.g. phiq's calibrated one) as mlx-lm
      would: unpacks each .weight/.scales/.biases triplet (w = scale * q +
      bias, float32, two roundings) and writes the float32 HF checkpoint
      (dense architectures: Phi-2, Phi-3/3.5, Phi-4, Phi-4-mini)
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "U32": np.uint32}


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(n)
        header = json.loads(raw)
        blob = f.read()
    return raw, header, blob


_loaded = {}


def load_hf(d):
    if d in _loaded:
        return _loaded[d]
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    out = {}
    for fn in files:
        _, h, blob = read_st(os.path.join(d, fn))
        for k, v in h.items():
            if k == "__metadata__":
                continue
            a, b = v["data_offsets"]
            arr = np.frombuffer(blob[a:b], dtype=DT[v["dtype"]]).reshape(v["shape"])
            out[k] = (v["dtype"], arr)
    _loaded[d] = out
    return out


def bf16_to_f32(u):
    return (u.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):  # round to nearest even (MLX's float -> bfloat16)
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def to_f32(dt, a):
    return bf16_to_f32(a) if dt == "BF16" else a.astype(np.float32)


def cast(dt, x):  # float32 values -> stored array of dtype dt
    if dt == "BF16":
        return f32_to_bf16(x)
    if dt == "F16":
        return x.astype(np.float16)
    return x.astype(np.float32)


def round_half_away(x):  # Metal's round(); exact in float64 for float32 input
    x64 = x.astype(np.float64)
    return (np.sign(x64) * np.floor(np.abs(x64) + 0.5)).astype(np.float32)


def mx_quantize(w, group, bits):
    """affine_quantize of quantized.h for float32 w [rows, K]: per group
    w_min, w_max (w_max starts at 0 on the GPU), scale, edge rule, codes."""
    rows, k = w.shape
    g = w.reshape(rows, k // group, group).astype(np.float32)
    n_bins = np.float32(2**bits - 1)
    w_min = g.min(axis=-1)
    w_max = np.maximum(g.max(axis=-1), np.float32(0))
    scale = np.maximum((w_max - w_min) / n_bins, np.float32(1e-7)).astype(np.float32)
    side = np.abs(w_min) > np.abs(w_max)
    scale = np.where(side, scale, -scale).astype(np.float32)
    edge = np.where(side, w_min, w_max).astype(np.float32)
    q0 = round_half_away((edge / scale).astype(np.float32))
    at_zero = q0 == 0
    scale = np.where(at_zero, scale, edge / np.where(at_zero, np.float32(1), q0)).astype(np.float32)
    bias = np.where(at_zero, np.float32(0), edge).astype(np.float32)
    q = round_half_away(((g - bias[..., None]) / scale[..., None]).astype(np.float32))
    q = np.clip(q, 0, n_bins).astype(np.uint8).reshape(rows, k)
    # bit stream: element i at bits [i*bits, (i+1)*bits) of the row, little end first
    planes = ((q[..., None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(rows, k * bits)
    words = np.packbits(planes, axis=-1, bitorder="little").view("<u4").astype(np.uint32)
    return words, scale, bias


def modules(cfg, w):
    """(path, kind, [hf weight names], bias name or None) in mlx-lm's parameter order"""
    mt = cfg["model_type"]
    L = cfg["num_hidden_layers"]
    out = [("model.embed_tokens", "embed", ["model.embed_tokens.weight"], None)]

    def lin(p, biased=False):
        return (p, "linear", [p + ".weight"], p + ".bias" if biased else None)

    def norm(p, biased=False):
        return (p, "norm", [p + ".weight"], p + ".bias" if biased else None)

    for l in range(L):
        pre = "model.layers.%d." % l
        if mt == "phi3":
            out += [lin(pre + "self_attn.qkv_proj"), lin(pre + "self_attn.o_proj"), lin(pre + "mlp.gate_up_proj"),
                    lin(pre + "mlp.down_proj"), norm(pre + "input_layernorm"), norm(pre + "post_attention_layernorm")]
        elif mt == "phi":
            out += [lin(pre + "self_attn.%s" % p, True) for p in ("q_proj", "k_proj", "v_proj", "dense")]
            out += [norm(pre + "input_layernorm", True), lin(pre + "mlp.fc1", True), lin(pre + "mlp.fc2", True)]
        elif mt == "phimoe":
            out += [lin(pre + "self_attn.%s" % p, True) for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
            out += [lin(pre + "block_sparse_moe.gate")]
            E = cfg["num_local_experts"]
            for n, m in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):  # SwitchGLU order
                out.append((pre + "block_sparse_moe.switch_mlp." + m, "switch",
                            [pre + "block_sparse_moe.experts.%d.%s.weight" % (e, n) for e in range(E)], None))
            out += [norm(pre + "input_layernorm", True), norm(pre + "post_attention_layernorm", True)]
    if mt == "phi":
        out.append(norm("model.final_layernorm", True))
        out.append(lin("lm_head", True))
    elif mt == "phimoe":
        out.append(norm("model.norm", True))
        out.append(lin("lm_head", True))
    else:
        out.append(norm("model.norm"))
        if not cfg.get("tie_word_embeddings", False):
            out.append(lin("lm_head"))
    return out


def recipe_bits(recipe, path, n_layers):
    low, high = {"mixed_2_6": (2, 6), "mixed_3_4": (3, 4), "mixed_3_6": (3, 6), "mixed_4_6": (4, 6)}[recipe]
    layer_location = 2  # position of N in model.layers.N.mlp.down_proj
    parts = path.split(".")
    index = int(parts[layer_location]) if len(parts) > layer_location else 0
    more = index < n_layers // 8 or index >= 7 * n_layers // 8 or (index - n_layers // 8) % 3 == 2
    if ("v_proj" in path) and more:
        return high
    if "down_proj" in path and more:
        return high
    if "lm_head" in path:
        return high
    return low


def expected(src, bits, group, recipe, want_deq=False):
    cfg = json.load(open(os.path.join(src, "config.json")))
    w = load_hf(src)
    dtype = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}.get(cfg.get("torch_dtype"))
    tensors = {}  # name -> (dtype, array)
    qcfg = {"group_size": group, "bits": bits, "mode": "affine"}
    deq = {}  # hf name -> float32 dequantized (or cast) weights
    n_params = 0
    for path, kind, wnames, bname in modules(cfg, w):
        srcs = [w[n] for n in wnames]
        dt = dtype or srcs[0][0]
        vals = [to_f32(s[0], s[1]) for s in srcs]
        vals = [to_f32(dt, cast(dt, v)) for v in vals]  # mlx-lm casts to the model dtype first
        stacked = np.stack(vals) if kind == "switch" else vals[0]
        n_params += stacked.size
        if kind != "norm" and stacked.shape[-1] % group == 0:
            b = recipe_bits(recipe, path, cfg["num_hidden_layers"]) if recipe else bits
            if recipe:
                qcfg[path] = {"group_size": None, "bits": b, "mode": "affine"}
            k = stacked.shape[-1]
            words, sc, bi = mx_quantize(stacked.reshape(-1, k), group, b)
            lead = stacked.shape[:-1]
            tensors[path + ".weight"] = ("U32", words.reshape(lead + (k * b // 32,)))
            tensors[path + ".scales"] = (dt, cast(dt, sc).reshape(lead + (k // group,)))
            tensors[path + ".biases"] = (dt, cast(dt, bi).reshape(lead + (k // group,)))
            if not want_deq:
                full = stacked
            else:  # dequantize from the stored scales/biases: scale * q + bias
                s32 = to_f32(dt, cast(dt, sc))
                b32 = to_f32(dt, cast(dt, bi))
                bitsarr = np.unpackbits(words.astype("<u4").view(np.uint8), axis=-1, bitorder="little")
                codes = (bitsarr.reshape(-1, k, b).astype(np.uint32) << np.arange(b, dtype=np.uint32)).sum(axis=-1)
                gidx = np.arange(k) // group
                full = (s32[:, gidx] * codes.astype(np.float32)).astype(np.float32) + b32[:, gidx]
                full = full.astype(np.float32).reshape(stacked.shape)
        else:
            tensors[path + ".weight"] = (dt, cast(dt, stacked))
            full = stacked
        if kind == "switch":
            for e, n in enumerate(wnames):
                deq[n] = full[e]
        else:
            deq[wnames[0]] = full
        if bname:
            bd, ba = w[bname]
            bv = to_f32(dt, cast(dt, to_f32(bd, ba)))
            tensors[path + ".bias"] = (dt, cast(dt, bv))
            deq[bname] = bv
            n_params += ba.size
    return cfg, tensors, qcfg, deq, n_params


def check(src, mlx, bits, group, recipe):
    cfg, exp, qcfg, _, n_params = expected(src, bits, group, recipe)
    index = json.load(open(os.path.join(mlx, "model.safetensors.index.json")))
    got = {}
    for fn in sorted(set(index["weight_map"].values())):
        raw, h, blob = read_st(os.path.join(mlx, fn))
        if h.get("__metadata__") != {"format": "mlx"}:
            return "%s: __metadata__ %r" % (fn, h.get("__metadata__"))
        if raw != json.dumps(h, sort_keys=True, separators=(",", ":")).encode():
            return "%s: header is not compact key-sorted JSON" % fn
        for k, v in h.items():
            if k == "__metadata__":
                continue
            if index["weight_map"].get(k) != fn:
                return "index names %s for %s" % (index["weight_map"].get(k), k)
            a, b = v["data_offsets"]
            got[k] = (v["dtype"], v["shape"], blob[a:b])
    if set(got) != set(exp):
        return "tensor names differ: missing %s, extra %s" % (sorted(set(exp) - set(got))[:5], sorted(set(got) - set(exp))[:5])
    for k in sorted(exp):
        dt, arr = exp[k]
        gdt, gshape, gbytes = got[k]
        if gdt != dt or list(gshape) != list(arr.shape):
            return "%s: %s %s, expected %s %s" % (k, gdt, gshape, dt, list(arr.shape))
        eb = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        if gbytes != eb:
            g = np.frombuffer(gbytes, dtype=arr.dtype).reshape(arr.shape)
            bad = np.argwhere(g != arr)[0]
            return "%s: element %s is %r, expected %r (%d of %d differ)" % (
                k, tuple(bad), g[tuple(bad)], arr[tuple(bad)], int((g != arr).sum()), arr.size)
    total = sum(len(v[2]) for v in got.values())
    if index["metadata"] != {"total_size": total, "total_parameters": n_params}:
        return "index metadata %r, expected total_size %d total_parameters %d" % (index["metadata"], total, n_params)
    if list(index["weight_map"]) != sorted(index["weight_map"]):
        return "weight_map is not sorted"
    mc = json.load(open(os.path.join(mlx, "config.json")))
    if mc.get("quantization") != qcfg or mc.get("quantization_config") != qcfg:
        return "config quantization %r, expected %r" % (mc.get("quantization"), qcfg)
    if list(mc) != sorted(mc):
        return "config.json keys are not sorted"
    want = dict(cfg)
    gen = os.path.join(src, "generation_config.json")
    if os.path.exists(gen):
        eos = json.load(open(gen)).get("eos_token_id", False)
        if eos:
            want["eos_token_id"] = eos
    for k in ("_name_or_path", "vision_config"):
        want.pop(k, None)
    want["quantization"] = want["quantization_config"] = qcfg
    if mc != want:
        diff = [k for k in set(mc) | set(want) if mc.get(k) != want.get(k)]
        return "config.json differs from the HF config in %s" % sorted(diff)
    return "ok %d tensors" % len(got)


def write_f32_checkpoint(out, tensors, cfg, side_dir):
    """tensors (name -> array) as one float32 model.safetensors, cfg as config.json
    (torch_dtype float32), the tokenizer/generation files copied from side_dir"""
    os.makedirs(out, exist_ok=True)
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype=np.float32)
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    cfg["torch_dtype"] = "float32"
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        if os.path.exists(os.path.join(side_dir, fn)):
            shutil.copy(os.path.join(side_dir, fn), out)


def dequant(src, out, bits, group, recipe):
    cfg, _, _, deq, _ = expected(src, bits, group, recipe, True)
    write_f32_checkpoint(out, deq, cfg, src)
    return "ok"


def unpack(words, bits, n):  # MLX packs each row as one little-endian bit stream
    rows = words.shape[0]
    bitstream = np.unpackbits(words.astype("<u4").view(np.uint8).reshape(rows, -1), axis=1, bitorder="little")
    bitstream = bitstream[:, : n * bits].reshape(rows, n, bits).astype(np.uint32)
    return (bitstream << np.arange(bits, dtype=np.uint32)).sum(axis=2, dtype=np.uint32)


def read_mlx(mlx, out):
    cfg = json.load(open(os.path.join(mlx, "config.json")))
    q = cfg.get("quantization")
    if not q:
        raise SystemExit("read: %s has no quantization entry in config.json" % mlx)
    w = load_hf(mlx)
    if any(".switch_mlp." in k for k in w):
        raise SystemExit("read: stacked experts (switch_mlp) are not supported by this reader")
    res = {}
    for k, (dt, a) in w.items():
        if k.endswith(".scales") or k.endswith(".biases"):
            continue
        base = k[: -len(".weight")] if k.endswith(".weight") else None
        if base and base + ".scales" in w:
            entry = q.get(base, q)
            bits, group = int(entry["bits"]), int(entry["group_size"] or q["group_size"])
            sdt, sc = w[base + ".scales"]
            _, bi = w[base + ".biases"]
            sc, bi = to_f32(sdt, sc), to_f32(sdt, bi)
            n = a.shape[1] * 32 // bits
            codes = unpack(a, bits, n).astype(np.float32)
            s = np.repeat(sc, group, axis=1)
            b = np.repeat(bi, group, axis=1)
            res[k] = (s * codes).astype(np.float32) + b
        else:
            res[k] = to_f32(dt, a)
    for key in ("quantization", "quantization_config"):
        cfg.pop(key, None)
    write_f32_checkpoint(out, res, cfg, mlx)
    return "ok %d tensors" % len(res)


def main():
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "check":
        # check SRC MLX_DIR:BITS:GROUP[:RECIPE] ...
        rc = 0
        for spec in args[2:]:
            parts = spec.split(":")
            recipe = parts[3] if len(parts) > 3 else None
            msg = check(args[1], parts[0], int(parts[1]), int(parts[2]), recipe)
            print("%s: %s" % (parts[0], msg))
            rc |= 0 if msg.startswith("ok") else 1
        return rc
    if len(args) in (3, 4) and args[0] == "dequant":
        parts = (args[3] if len(args) == 4 else "x:4:64").split(":")
        print(dequant(args[1], args[2], int(parts[1]), int(parts[2]), parts[3] if len(parts) > 3 else None))
        return 0
    if len(args) == 3 and args[0] == "read":
        print(read_mlx(args[1], args[2]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
