#!/bin/sh
# pil_compare.sh: images decode to the pixels PyTorch's ImageFolder sees.
#
# torchvision's ImageFolder opens images with PIL and converts them with
# convert("RGB") (and a Grayscale transform with convert("L")). For JPEG
# images that cnnc-data writes (4:2:0 colour, gray) and for every PNG and
# JPEG of the image fuzzer's seeds (gray of 1 to 16 bits, palettes with
# transparency, alpha, Adam7, progressive and restart-marker JPEGs), the
# runtime's pixels (tests/image_pixels) must be PIL's, byte for byte. 16-bit
# RGB is left out: PIL keeps the high byte, the runtime rounds
# (README.md).
#
# Needs a Python with PIL (Debian: python3-pil); skips (77) without.
: "${RT_BUILDDIR:=.}" "${srcdir:=.}"
pixels=$RT_BUILDDIR/tests/image_pixels
py=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import PIL' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ] || [ ! -x "$pixels" ]; then
    echo "SKIP: needs a Python with PIL (python3-pil) and $pixels"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cnnrt-pil.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
"$RT_BUILDDIR/cnnc-data" shapes --out "$tmp/shapes" --train 24 --test 1 --seed 3 \
    --format jpeg >/dev/null &&
"$RT_BUILDDIR/cnnc-data" blobs --out "$tmp/gray" --shape 9x13x1 --classes 3 --train 12 \
    --test 1 --seed 3 --format jpeg >/dev/null || exit 1
"$py" - "$pixels" "$tmp" "$srcdir/fuzz/corpus/image" <<'PY'
import glob, subprocess, sys, warnings
import PIL
from PIL import Image
warnings.simplefilter('ignore')   # PIL's advice about palettes with transparency
pixels, tmp, seeds = sys.argv[1:4]
files = sorted(glob.glob(tmp + '/*/train/*/*.jpg')) + sorted(glob.glob(seeds + '/*'))
failed = 0
for f in files:
    for mode, c in (('RGB', '3'), ('L', '1')):
        if f.endswith('rgb16.png'):
            continue
        want = Image.open(f).convert(mode).tobytes()
        got = subprocess.run([pixels, f, c], check=True, stdout=subprocess.PIPE).stdout
        if got != want:
            failed += 1
            print('FAIL: %s as %s: %d of %d bytes differ from PIL' %
                  (f, mode, sum(a != b for a, b in zip(got, want)), len(want)))
print('%s: %d images, %d conversions differ from PIL %s'
      % ('FAIL' if failed else 'PASS', len(files), failed, PIL.__version__))
sys.exit(1 if failed else 0)
PY
