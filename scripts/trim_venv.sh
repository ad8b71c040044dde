#!/usr/bin/env bash
# Trim the image's venv (Dockerfile: the "build" and "lean-build" stages, right after pip install;
# those stages are not shipped, the final images copy only what is left). Needs strip and readelf
# (binutils). Usage: scripts/trim_venv.sh [--lean] VENV
#
# Every deletion was checked against the imports of the production server and its workers (and, in
# the full image, `import paddle, paddlehub` and `hub install`), the build's smoke test (a real request) and
# the HTTP tests of scripts/container_test.sh. Paths a venv does not have (the lean one has no paddle)
# are skipped.
# - tests/ and test/ directories (pandas alone has 40 MB), C/C++ headers, Cython sources, static
#   libraries: for testing or building against a package, never imported; type stubs (.pyi), read
#   only by type checkers, except scikit-image's, which its lazy_loader reads at import;
# - pyarrow's Arrow Flight RPC libraries (22 MB): `import pyarrow` (through datasets) never loads them;
# - visualdl/server/dist (23 MB): VisualDL's web UI, never served;
# - jieba's dictionaries and its posseg, analyse and lac_small packages (35 MB): paddlenlp imports
#   jieba (Chinese word segmentation) but OCR never segments, so they are never read;
# - OpenCV's Haar cascades, cv2/data/*.xml (9 MB): read only by cv2.CascadeClassifier (face detection);
# - pikepdf's PDF/A validation rules and schemas, pikepdf/pdfa (1 MB): never imported (no PDF/A is written);
# - OpenVINO (the openvino package; 180 MB installed) keeps its core, the CPU plugin, and the IR,
#   Paddle and ONNX frontends (read_model on inference.pdmodel; ONNX in the full image only, below).
#   Gone: the GPU and NPU plugins (51 MB) and the GPU plugin's kernel cache libs/cache.json (8.5 MB);
#   the AUTO, HETERO and BATCH meta-plugins (only compile_model on "CPU" is used); the TensorFlow,
#   TensorFlow Lite, PyTorch, JAX and GGUF frontends and their Python sides (openvino.torch too);
#   the C API library; include/, cmake/ and tools/ (the ovc converter and benchmark_app: `import
#   openvino` tries `from openvino.tools.ovc import convert_model` and goes on without it) with
#   their commands (ovc, benchmark_app);
# - Paddle's own copy of OpenVINO's CPU plugin (paddle/libs, 62 MB): Paddle Inference runs only the
#   onednn, plain and GPU engines (ocrhub/predictor.py), which never load it; libpaddle links
#   libopenvino.so.2500 and its Paddle frontend, so those stay; and Paddle's LAPACK with the
#   reference BLAS and Fortran runtime only it links (paddle/libs, 11 MB): dlopened only for
#   paddle.linalg's decompositions (eig, svd, qr, ...), which no OCR model runs;
# - with --lean (the lean image: production server and OpenVINO engines only), also what its code
#   never loads: Pillow's font and Tk modules with the libraries only they link (FreeType, HarfBuzz,
#   Brotli; ocrhub uses Pillow to read image headers, and img2pdf imports its colour management), and
#   numpy's build tools (f2py, numpy.distutils; the full venv keeps them: SciPy's import touches
#   numpy.f2py), its test and SIMD-introspection extension modules, and the subpackages that neither
#   numpy's own import nor OpenCV, OpenVINO, Pillow, pypdfium2 or ocrhub load (numpy.random, fft,
#   polynomial, testing: numpy imports them only when used); OpenVINO's ONNX frontend (model sets
#   converted from Paddle 3 programs are converted to OpenVINO IR at build time, not read as ONNX);
# - symbol tables of the shared libraries that still have one (strip --strip-unneeded; libarrow and
#   libdnnl are most of it): the dynamic symbols stay. Each stripped copy must dlopen before it
#   replaces the original; libraries that auditwheel patched with patchelf may not survive strip
#   ("ELF load command address/offset not page-aligned") and are then kept as they were.
# Then every library that stays must still find, by name, each library it links (in the venv or in
# the system's linker cache): a deletion that orphans one fails the build here, not at run time.
set -euo pipefail
lean=false
[ "${1:-}" = --lean ] && { lean=true; shift; }
venv="${1:?usage: trim_venv.sh [--lean] VENV}"
sp="$(echo "$venv"/lib/python3.*/site-packages)"
[ -d "$sp" ] || { echo "trim_venv.sh: no site-packages under $venv" >&2; exit 1; }
ov="$sp/openvino"

find "$venv" -depth -type d \( -name __pycache__ -o -name tests -o -name test \) -exec rm -rf {} +
find "$sp" -type f \( -name '*.a' -o -name '*.h' -o -name '*.hpp' -o -name '*.cuh' -o -name '*.pyx' \
    -o -name '*.pxd' -o -name '*.pxi' -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' \) -delete
rm -rf "$sp"/paddle/include "$sp"/pyarrow/include "$sp"/numpy/_core/include \
    "$sp"/pyarrow/libarrow_flight.so* "$sp"/pyarrow/libarrow_python_flight.so* "$sp"/pyarrow/_flight.* \
    "$sp"/visualdl/server/dist \
    "$sp"/jieba/dict.txt "$sp"/jieba/posseg "$sp"/jieba/analyse "$sp"/jieba/lac_small \
    "$sp"/cv2/data/*.xml "$sp"/pikepdf/pdfa
find "$sp" -type f -name '*.pyi' ! -path "$sp/skimage/*" -delete
rm -f "$sp"/paddle/libs/libopenvino_intel_cpu_plugin.so \
    "$sp"/paddle/libs/liblapack.so.3 "$sp"/paddle/libs/libblas.so.3 \
    "$sp"/paddle/libs/libgfortran.so.3 "$sp"/paddle/libs/libquadmath.so.0
if [ -d "$ov" ]; then
  rm -rf "$ov"/libs/libopenvino_intel_gpu_plugin.so "$ov"/libs/libopenvino_intel_npu_plugin.so "$ov"/libs/cache.json \
      "$ov"/libs/libopenvino_auto_plugin.so "$ov"/libs/libopenvino_auto_batch_plugin.so "$ov"/libs/libopenvino_hetero_plugin.so \
      "$ov"/libs/libopenvino_tensorflow_frontend.so* "$ov"/libs/libopenvino_tensorflow_lite_frontend.so* \
      "$ov"/libs/libopenvino_pytorch_frontend.so* "$ov"/libs/libopenvino_jax_frontend.so* \
      "$ov"/libs/libopenvino_gguf_frontend.so* "$ov"/libs/libopenvino_c.so* "$ov"/libs/tbb.pc \
      "$ov"/frontend/tensorflow "$ov"/frontend/pytorch "$ov"/frontend/jax "$ov"/torch \
      "$ov"/include "$ov"/cmake "$ov"/tools "$venv"/bin/ovc "$venv"/bin/benchmark_app
fi
if $lean; then
  rm -rf "$sp"/PIL/_imagingft.* "$sp"/PIL/_imagingtk.* \
      "$sp"/pillow.libs/libfreetype-* "$sp"/pillow.libs/libharfbuzz-* "$sp"/pillow.libs/libbrotli* \
      "$sp"/numpy/f2py "$sp"/numpy/distutils "$venv"/bin/f2py "$venv"/bin/numpy-config \
      "$sp"/numpy/_core/_simd.* "$sp"/numpy/_core/_*_tests.* \
      "$sp"/numpy/random "$sp"/numpy/fft "$sp"/numpy/polynomial "$sp"/numpy/testing "$sp"/numpy/_pyinstaller \
      "$ov"/libs/libopenvino_onnx_frontend.so* "$ov"/frontend/onnx
fi

find "$sp" -type f -name '*.so*' | while read -r lib; do
  readelf -S "$lib" 2>/dev/null | grep '[.]symtab' >/dev/null || continue  # not grep -q: readelf must not get SIGPIPE
  strip --strip-unneeded -o "$lib.stripped" "$lib"
  if "$venv/bin/python" -c "import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$lib.stripped" 2>/dev/null; then
    mv "$lib.stripped" "$lib"; echo "stripped $lib"
  else
    rm "$lib.stripped"; echo "kept $lib"
  fi
done > /tmp/strip.log
echo "strip: $(grep -c ^stripped /tmp/strip.log) libraries stripped, $(grep -c ^kept /tmp/strip.log) kept as they were"

find "$sp" -type f -name '*.so*' -printf '%f\n' | sort -u > /tmp/libs-present
ldconfig -p | awk 'NR > 1 {print $1}' | sort -u >> /tmp/libs-present
find "$sp" -type f -name '*.so*' | while read -r lib; do
  readelf -d "$lib" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | while read -r name; do
    grep -qxF "$name" /tmp/libs-present || echo "$lib needs $name, which is gone"
  done
done > /tmp/libs-missing
if [ -s /tmp/libs-missing ]; then cat /tmp/libs-missing >&2; exit 1; fi
rm -f /tmp/libs-present /tmp/libs-missing
