"""A generated corpus of hostile inputs for the data stages, mixed with good ones.

`write_good` and `write_bad` fill a data/raw folder. `write_bad` returns, per input, what the stages must
do with it: "skip" (it must be listed in skipped.csv with a reason), "extract" (odd but valid: it must
come out, with a safe name) or "any" (damage a reader may not notice: either, but no crash).
"""
from __future__ import annotations

import io
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.project import IMAGES, TEMPLATES

TEMPLATE_NAMES = sorted(p.name for p in TEMPLATES.iterdir())
BOMB_BYTES = 70 << 20                     # above pipeline.extract.archives.BOMB_MIN_BYTES


def zip_bytes(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def image_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _bundle_header_end(bundle: bytes) -> int:
    """Offset just past a UnityFS header (signature, version, two version strings, size, block sizes, flags)."""
    pos = bundle.index(b"\x00") + 1 + 4
    pos = bundle.index(b"\x00", pos) + 1
    pos = bundle.index(b"\x00", pos) + 1
    return pos + 8 + 4 + 4 + 4


def unknown_compression(bundle: bytes, value: int = 0x3F) -> bytes:
    end = _bundle_header_end(bundle)
    flags = struct.unpack(">I", bundle[end - 4:end])[0]
    return bundle[:end - 4] + struct.pack(">I", (flags & ~0x3F) | value) + bundle[end:]


def flip_header_bits(bundle: bytes, rng: random.Random, flips: int) -> bytes:
    """Flip bits in the signature or the block-table sizes: damage no reader can miss.

    (A flip in pixel data or a version string can leave a readable bundle: garbage in, garbage out.)
    """
    b = bytearray(bundle)
    end = _bundle_header_end(bundle)
    places = list(range(0, 7)) + list(range(end - 12, end - 8))          # signature, compressed size
    for _ in range(flips):
        b[rng.choice(places)] ^= 1 << rng.randrange(8)
    return bytes(b)


def unknown_format(name: str, fmt: int) -> bytes:
    import UnityPy

    env = UnityPy.load(str(TEMPLATES / name))
    for obj in env.objects:
        if obj.type.name == "Texture2D":
            tree = obj.read_typetree()
            tree["m_TextureFormat"] = fmt
            obj.save_typetree(tree)
    return env.file.save(packer="lz4")


def mode_images() -> dict[str, bytes]:
    """One valid image in (nearly) every PIL mode, in a format that stores that mode."""
    base = Image.open(IMAGES / "tadne_r1c2.jpg").convert("RGB").resize((96, 96))
    rgba = base.copy()
    rgba.putalpha(Image.linear_gradient("L").resize((96, 96)))
    grey16 = Image.fromarray((np.asarray(base.convert("L"), np.uint16) * 257))
    return {
        "modes/one_bit.png": image_bytes(base.convert("1")),
        "modes/grey.png": image_bytes(base.convert("L")),
        "modes/grey_alpha.png": image_bytes(rgba.convert("LA")),
        "modes/palette.png": image_bytes(base.convert("P")),
        "modes/palette_transparent.gif": image_bytes(rgba.convert("P")),
        "modes/rgb.png": image_bytes(base),
        "modes/rgba.png": image_bytes(rgba),
        "modes/cmyk.tif": image_bytes(base.convert("CMYK"), "TIFF"),
        "modes/ycbcr.jpg": image_bytes(base, "JPEG"),
        "modes/int32.tif": image_bytes(base.convert("I"), "TIFF"),
        "modes/grey16.png": image_bytes(grey16),
        "modes/float.tif": image_bytes(base.convert("F"), "TIFF"),
        "modes/lab.tif": image_bytes(base.convert("LAB"), "TIFF"),
        "modes/rgba.webp": image_bytes(rgba, "WEBP"),
        "modes/rgb.bmp": image_bytes(base, "BMP"),
    }


def write_good(raw: Path) -> None:
    for name in TEMPLATE_NAMES:
        (raw / "bundles" / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / "bundles" / name).write_bytes((TEMPLATES / name).read_bytes())
    apk = {"AndroidManifest.xml": b"<manifest/>",
           "assets/AssetBundles/gfl": (TEMPLATES / "synthetic_gfl_style_face.bundle").read_bytes(),
           "assets/AssetBundles/char": (TEMPLATES / "synthetic_rgb_alpha_sprite.bundle").read_bytes()}
    (raw / "good.apk").write_bytes(zip_bytes(apk))
    (raw / "images").mkdir(exist_ok=True)
    for name in ("tadne_r0c1.jpg", "tadne_r3c3.jpg"):
        (raw / "images" / name).write_bytes((IMAGES / name).read_bytes())


def write_bad(raw: Path, seed: int = 0) -> dict[str, str]:
    """Write the hostile inputs; return {source: "skip" | "extract" | "any"} (sources as unpack names them)."""
    rng = random.Random(seed)
    expect: dict[str, str] = {}

    def put(rel: str, data: bytes, what: str) -> None:
        path = raw / "bad" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expect[f"bad/{rel}"] = what

    bundles = {n: (TEMPLATES / n).read_bytes() for n in TEMPLATE_NAMES}
    for name, data in bundles.items():
        for cut in (0.05, 0.25, 0.5, 0.75, 0.95):                            # 25 truncated bundles
            put(f"truncated/{name}.{int(cut * 100)}", data[: int(len(data) * cut)], "skip")
        for i in range(5):                                                  # 25 bit-flipped headers
            put(f"flipped/{name}.{i}", flip_header_bits(data, rng, 1 + i * 3), "skip")
        for value in (7, 0x15, 0x3F):                                       # 15 unknown compressions
            put(f"compression/{name}.{value}", unknown_compression(data, value), "skip")
    for i, fmt in enumerate((200, 255, 999, 77, 123)):                      # 5 unknown texture formats
        put(f"format/tex{i}.bundle", unknown_format(TEMPLATE_NAMES[i % 4 + 1], fmt), "skip")
    bundle = bundles["synthetic_gfl_style_face.bundle"]
    apk = zip_bytes({"assets/bin/Data/a": bundle, "classes.dex": b"dex\n" * 50}, zipfile.ZIP_STORED)
    for i, cut in enumerate((10, 100, 1000, len(apk) // 2, len(apk) - 30)):  # 5 truncated APKs
        put(f"apk/truncated{i}.apk", apk[:cut], "skip")
    member_at = apk.index(b"UnityFS")
    for i in range(10):                                                     # 10 bit-flipped APKs (CRC)
        b = bytearray(apk)
        b[member_at + 100 + rng.randrange(len(bundle) - 200)] ^= 1 << rng.randrange(8)
        put(f"apk/flipped{i}.apk", bytes(b), "skip")
    for i in range(5):                                                      # 5 zip bombs by ratio
        put(f"bomb/bomb{i}.apk", zip_bytes({f"assets/bomb{i}": bytes(BOMB_BYTES)}), "skip")
    put("apk/not_an_apk.apk", zip_bytes({"readme.txt": b"hello", "x.json": b"{}"}), "skip")
    put("apk/empty_zip.apk", zip_bytes({}), "skip")
    inner = zip_bytes({"assets/x": b"UnityFS\x00" + bytes(200)})
    for i in range(5):                                                      # 5 XAPKs with a bad inner APK
        put(f"xapk/bad_inner{i}.xapk", zip_bytes({"base.apk": inner[: len(inner) - 20 * i - 1],
                                                  "manifest.json": b"{}"}), "skip")
    traversal = ["../../evil.bundle", "/abs/evil.bundle", "a/../../../evil.bundle", "C:\\evil.bundle",
                 "con.bundle", "nul\x00byte.bundle", "....//....//evil.bundle", "lpt1/aux.bundle"]
    for i, name in enumerate(traversal):                                    # 8 hostile names, good content
        put(f"traversal/t{i}.apk", zip_bytes({name: bundles["synthetic_rgb_alpha_sprite.bundle"]}), "extract")
    for i, ext in enumerate([".apk", ".png", ".bundle", ".obb", ".xapk", ".jpg", ".assets", "", ".apks", ".zip"]):
        put(f"empty/zero{i}{ext}", b"", "skip")                             # 10 zero-byte files
    for i, (mode, fmt) in enumerate([("RGB", "PNG"), ("L", "PNG"), ("RGBA", "PNG"), ("P", "GIF"),
                                     ("RGB", "JPEG"), ("RGB", "BMP"), ("RGBA", "WEBP"), ("1", "PNG"),
                                     ("LA", "PNG"), ("CMYK", "TIFF")]):
        put(f"tiny/one{i}.{fmt.lower()}", image_bytes(Image.new(mode, (1, 1)), fmt), "skip")  # 10 1x1 images
    for i, side in enumerate((9000, 10000, 12000)):                         # 3 decompression bombs
        put(f"bombs/bomb{i}.png", image_bytes(Image.new("1", (side, side))), "skip")
    for i in range(12):                                                     # 12 non-images named .png
        data = rng.randbytes(64 + 37 * i) if i % 2 else f"not a picture {i}\n".encode() * (i + 1)
        put(f"notimage/fake{i}.png", data, "skip")
    for i, fmt in enumerate(["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"]):  # 12 truncated images
        full = image_bytes(Image.open(IMAGES / "tadne_r2c1.jpg").convert("RGB"), fmt)
        put(f"cutimage/a{i}.{fmt.lower()}", full[: len(full) // 3], "skip")
        put(f"cutimage/b{i}.{fmt.lower()}", full[:40], "skip")
    for i in range(30):                                                     # 30 random files, Unity-ish names
        put(f"garbage/data{i}{rng.choice(['.assets', '.bundle', '.unity3d', '.obb', ''])}",
            rng.randbytes(rng.randrange(1, 5000)), "skip")
    for i in range(5):                                                      # 5 fake serialized-file headers
        size = 4096
        head = struct.pack(">IIII", 200, size, 17, 1024) + rng.randbytes(size - 16)
        put(f"fakeserial/level{i}", head, "skip")
    for i in range(10):                                                     # 10 bundles flipped anywhere:
        b = bytearray(bundles[TEMPLATE_NAMES[i % 5]])                       # readable or not, never a crash
        for _ in range(1 + i):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        put(f"anyflip/b{i}", bytes(b), "any")
    for rel, data in mode_images().items():                                 # 15 images in odd modes
        put(rel, data, "extract")
    return expect
