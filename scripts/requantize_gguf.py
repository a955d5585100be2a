#!/usr/bin/env python3
"""Requantise a GGUF model's weights to Q8_0 (with PyPI's `gguf` package).

The local LLM ships as Q4_1. On CPUs without fast 4-bit kernels the Q8_0
dot products are quicker, and for a 135M-parameter model the file only grows
from ~100 MB to ~145 MB, so setup writes a Q8_0 copy beside it. Q8_0 holds
the Q4_1 values exactly enough (8 bits per weight against 4 plus scales):
quality is the Q4_1 model's.

Every metadata key is copied as is except general.file_type; F32 tensors
(norms) and tensors already Q8_0 are copied unchanged; every other quantised
tensor is dequantised to f32 and quantised to Q8_0. The output is
deterministic for a given input and gguf version.

    requantize_gguf.py IN.gguf OUT.gguf
"""

import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

# general.file_type for "mostly Q8_0" (llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0).
FTYPE_MOSTLY_Q8_0 = 7


def main(src: str, dst: str) -> None:
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)  # writes general.architecture itself
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            writer.add_key_value(name, FTYPE_MOSTLY_Q8_0, V.UINT32)
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == V.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub_type)

    counts = {}
    for t in reader.tensors:
        qtype = t.tensor_type
        if qtype in (Q.F32, Q.F16, Q.BF16):
            data, raw = np.array(t.data), None
        elif qtype == Q.Q8_0:
            data, raw = np.array(t.data), Q.Q8_0
        else:
            f32 = gguf.quants.dequantize(t.data, qtype)
            data, raw = gguf.quants.quantize(f32, Q.Q8_0), Q.Q8_0
        counts[(qtype.name, (raw or qtype).name)] = counts.get((qtype.name, (raw or qtype).name), 0) + 1
        writer.add_tensor(t.name, data, raw_dtype=raw)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for (a, b), n in sorted(counts.items()):
        print(f"  {n} tensors {a} -> {b}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
