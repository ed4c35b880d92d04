"""Image decoding: every format and mode users send, orientation, geometry, limits, bad bytes."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from imgsearch.config.settings import Limits
from imgsearch.embedder.images import decode_image
from imgsearch.errors import InvalidArgument, ResourceExhausted

LIMITS = Limits()
RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 255, 255)


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def halves(size: tuple[int, int] = (320, 240), left=RED, right=BLUE) -> Image.Image:
    """Left half one colour, right half another: survives resizing, shows mirroring and rotation."""
    img = Image.new("RGB", size, left)
    img.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return img


def assert_colour(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> None:
    diff = np.abs(pixels.reshape(-1, 3).astype(int) - np.array(colour)).max()
    assert diff <= tol, f"expected {colour}, mean pixel {pixels.reshape(-1, 3).mean(0).round()}"


def assert_halves(pixels: np.ndarray, left, right, tol: int = 12) -> None:
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    assert_colour(pixels[:, :100], left, tol)
    assert_colour(pixels[:, 124:], right, tol)


@pytest.mark.parametrize(
    ("fmt", "params", "tol"),
    [
        ("JPEG", {"quality": 95}, 30),  # chroma subsampling blurs the edge, lossy colours
        ("PNG", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("WEBP", {"quality": 90}, 30),
        ("GIF", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("TIFF", {"compression": "tiff_lzw"}, 0),
    ],
)
def test_each_format_decodes_to_the_same_picture(fmt, params, tol):
    decoded = decode_image(encode(halves(), fmt, **params), LIMITS)
    assert (decoded.width, decoded.height) == (320, 240)
    assert_halves(decoded.pixels, RED, BLUE, tol)


def test_multi_picture_jpeg_from_a_camera():
    """Phones write MPO (a JPEG plus more pictures); it is a JPEG to users and decodes as one."""
    first, second = halves((2000, 1500)), Image.new("RGB", (2000, 1500), GREEN)
    data = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    decoded = decode_image(data, LIMITS)
    assert (decoded.width, decoded.height) == (2000, 1500)
    assert_halves(decoded.pixels, RED, BLUE, 30)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (64, 64), c) for c in (GREEN, RED, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert_colour(decode_image(data, LIMITS).pixels, GREEN, tol=0)


@pytest.mark.parametrize(
    ("orientation", "left", "right"),
    [(1, RED, BLUE), (2, BLUE, RED), (3, BLUE, RED), (6, (0, 0, 0), (0, 0, 0))],
)
def test_exif_orientation_is_applied(orientation, left, right):
    img = halves((320, 240))
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(img, "JPEG", quality=95, exif=exif), LIMITS)
    if orientation == 6:  # 90 degrees clockwise: left half goes to the top, sides swap
        assert (decoded.width, decoded.height) == (240, 320)
        assert_colour(decoded.pixels[:100], RED, 30)
        assert_colour(decoded.pixels[124:], BLUE, 30)
    else:
        assert (decoded.width, decoded.height) == (320, 240)
        assert_halves(decoded.pixels, left, right, 30)


def test_greyscale_becomes_grey_rgb():
    decoded = decode_image(encode(Image.new("L", (100, 80), 100), "PNG"), LIMITS)
    assert_colour(decoded.pixels, (100, 100, 100), tol=0)


def test_one_bit_image():
    img = Image.new("1", (100, 80), 0)
    img.paste(1, (50, 0, 100, 80))
    assert_halves(decode_image(encode(img, "PNG"), LIMITS).pixels, (0, 0, 0), WHITE, 0)


def test_palette_image():
    img = halves().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert img.mode == "P"
    assert_halves(decode_image(encode(img, "PNG"), LIMITS).pixels, RED, BLUE, 0)


def test_palette_with_transparent_index_composites_on_white():
    img = halves().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    transparent = img.getpixel((0, 0))  # the red half's index
    for fmt in ("PNG", "GIF"):
        data = encode(img, fmt, transparency=transparent)
        assert_halves(decode_image(data, LIMITS).pixels, WHITE, BLUE, 0)


def test_rgba_composites_on_white():
    img = Image.new("RGBA", (100, 80), RED + (0,))  # fully transparent left half
    img.paste(BLUE + (255,), (50, 0, 100, 80))
    assert_halves(decode_image(encode(img, "PNG"), LIMITS).pixels, WHITE, BLUE, 0)
    half = Image.new("RGBA", (100, 80), (0, 0, 0, 128))  # half-transparent black -> mid grey
    assert_colour(decode_image(encode(half, "WEBP", lossless=True), LIMITS).pixels, (127, 127, 127), 1)


def test_rgb_png_with_a_transparent_colour():
    assert_halves(decode_image(encode(halves(), "PNG", transparency=RED), LIMITS).pixels, WHITE, BLUE, 0)


def test_greyscale_with_alpha():
    img = Image.new("LA", (100, 80), (0, 0))
    img.paste((0, 255), (50, 0, 100, 80))
    assert_halves(decode_image(encode(img, "PNG"), LIMITS).pixels, WHITE, (0, 0, 0), 0)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk(fmt):
    img = Image.new("CMYK", (100, 80), (0, 255, 255, 0))  # red in CMYK
    img.paste((255, 255, 0, 0), (50, 0, 100, 80))  # blue
    assert Image.open(io.BytesIO(encode(img, fmt))).mode == "CMYK"
    assert_halves(decode_image(encode(img, fmt), LIMITS).pixels, RED, BLUE, 30)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_greyscale_keeps_its_brightness(fmt):
    values = np.full((80, 100), 128 * 257, np.uint16)  # mid grey in 16 bits
    values[:, 50:] = 65535
    data = encode(Image.fromarray(values), fmt)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    assert_halves(decode_image(data, LIMITS).pixels, (128, 128, 128), WHITE, 0)


def test_16_bit_rgb_png():
    raw = np.zeros((80, 100, 3), ">u2")
    raw[:, :50, 0] = 65535
    raw[:, 50:, 2] = 65535
    rows = b"".join(b"\x00" + row.tobytes() for row in raw)
    ihdr = struct.pack(">IIBBBBB", 100, 80, 16, 2, 0, 0, 0)
    data = _png([(b"IHDR", ihdr), (b"IDAT", zlib.compress(rows)), (b"IEND", b"")])
    assert_halves(decode_image(data, LIMITS).pixels, RED, BLUE, 0)


def test_float_tiff_in_unit_range():
    values = np.full((80, 100), 0.5, np.float32)
    values[:, 50:] = 1.0
    data = encode(Image.fromarray(values), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    assert_halves(decode_image(data, LIMITS).pixels, (128, 128, 128), WHITE, 1)


def test_32_bit_integer_tiff_in_16_bit_range():
    values = np.full((80, 100), 0, np.int32)
    values[:, 50:] = 65535
    data = encode(Image.fromarray(values), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    assert_halves(decode_image(data, LIMITS).pixels, (0, 0, 0), WHITE, 0)


def test_centre_crop_keeps_the_middle_224_of_256():
    """The documented geometry: shorter side to 256, centre 224 kept, aspect ratio untouched."""
    wide = Image.new("RGB", (512, 256), RED)
    wide.paste(GREEN, (128, 0, 384, 256))  # the central square
    decoded = decode_image(encode(wide, "PNG"), LIMITS)
    assert_colour(decoded.pixels, GREEN, tol=0)

    framed = Image.new("RGB", (512, 512), RED)  # 24 px frame at 512 is 12 px at 256: cut off
    framed.paste(GREEN, (24, 24, 488, 488))
    assert_colour(decode_image(encode(framed, "PNG"), LIMITS).pixels, GREEN, tol=0)

    framed = Image.new("RGB", (512, 512), RED)  # 40 px frame is 20 px at 256: 4 px remain
    framed.paste(GREEN, (40, 40, 472, 472))
    pixels = decode_image(encode(framed, "PNG"), LIMITS).pixels
    assert_colour(pixels[:2, :], RED, tol=0)
    assert_colour(pixels[8:-8, 8:-8], GREEN, tol=0)


@pytest.mark.parametrize("size", [(1, 1), (3000, 7), (7, 3000), (224, 224), (50, 40)])
def test_any_shape_gives_the_model_input(size):
    decoded = decode_image(encode(Image.new("RGB", size, RED), "PNG"), LIMITS)
    assert decoded.pixels.shape == (224, 224, 3)
    assert (decoded.width, decoded.height) == size
    assert_colour(decoded.pixels, RED, tol=0)


def test_other_model_sizes():
    decoded = decode_image(encode(halves((640, 480)), "PNG"), LIMITS, size=160)
    assert decoded.pixels.shape == (160, 160, 3)


def test_big_jpeg_decodes_through_draft_mode_to_the_same_picture():
    """A 12 MP JPEG is decoded at a reduced size (draft mode; its speed is in the benchmarks) and
    still reports its real size and gives the right picture."""
    decoded = decode_image(encode(halves((4000, 3000)), "JPEG", quality=90), LIMITS)
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert_halves(decoded.pixels, RED, BLUE, 30)


def reference_decode(data: bytes) -> np.ndarray:
    """The slow, obvious pipeline: full decode, bicubic resize of the whole image, then crop."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    scale = 256 / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    left, top = (img.width - 224) // 2, (img.height - 224) // 2
    return np.asarray(img.crop((left, top, left + 224, top + 224)))


def test_real_photos_match_the_obvious_pipeline(photos):
    """Sub-pixel crop offsets cost a few levels on textured photos; a wrong crop costs tens."""
    diffs = {}
    for name, path in photos.items():
        data = path.read_bytes()
        decoded = decode_image(data, LIMITS)
        assert decoded.pixels.shape == (224, 224, 3), name
        diffs[name] = np.abs(decoded.pixels.astype(int) - reference_decode(data)).mean()
    assert max(diffs.values()) < 8, diffs
    assert np.mean(list(diffs.values())) < 1.5, diffs


def test_big_photo_matches_the_obvious_pipeline(photos):
    """A 4x upscaled real photo (2560x1708): draft mode decodes it at 1/4 size, still faithful."""
    img = Image.open(photos["puppy"]).convert("RGB")
    data = encode(img.resize((img.width * 4, img.height * 4), Image.Resampling.BICUBIC), "JPEG")
    diff = np.abs(decode_image(data, LIMITS).pixels.astype(int) - reference_decode(data)).mean()
    assert diff < 4, f"mean difference {diff:.1f} from a full decode"


# --- refusals ---------------------------------------------------------------------------------


def test_empty_bytes():
    with pytest.raises(InvalidArgument, match="empty"):
        decode_image(b"", LIMITS)


def test_too_many_bytes_names_the_limit():
    data = encode(halves(), "PNG")
    with pytest.raises(ResourceExhausted, match=f"image is {len(data)} bytes.*max_image_bytes=100"):
        decode_image(data, Limits(max_image_bytes=100))
    decode_image(data, Limits(max_image_bytes=len(data)))  # exactly at the limit is allowed


def test_too_many_pixels_names_the_limit():
    data = encode(halves((320, 240)), "JPEG")
    with pytest.raises(ResourceExhausted, match="320x240 = 76800 pixels.*max_image_pixels=76799"):
        decode_image(data, Limits(max_image_pixels=76_799))
    decode_image(data, Limits(max_image_pixels=76_800))


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return out


@pytest.mark.parametrize("side", [8_000, 100_000])  # 64 M pixels: our check; 10 G: Pillow's guard
def test_decompression_bomb_is_refused_before_decoding(side):
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    bomb = _png([(b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\x00" * 1000)), (b"IEND", b"")])
    assert len(bomb) < 200
    start = time.perf_counter()
    with pytest.raises(ResourceExhausted, match="over the limit max_image_pixels=40000000"):
        decode_image(bomb, LIMITS)
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",
        b"hello, this is not an image",
        bytes(range(256)) * 40,
        b"\x89PNG\r\n\x1a\n",  # signature only
        b"\xff\xd8\xff\xe0",  # JPEG start only
    ],
    ids=["one-byte", "text", "noise", "png-signature", "jpeg-start"],
)
def test_not_an_image(data):
    with pytest.raises(InvalidArgument, match="cannot"):
        decode_image(data, LIMITS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_truncated_image(fmt):
    data = encode(halves((320, 240)).effect_spread(5), fmt)  # noise so there is data to cut
    with pytest.raises(InvalidArgument, match="cannot"):
        decode_image(data[: len(data) // 2], LIMITS)


def test_corrupt_png_checksum():
    data = bytearray(encode(halves(), "PNG"))
    data[60] ^= 0xFF  # inside the IDAT
    with pytest.raises(InvalidArgument, match="cannot decode"):
        decode_image(bytes(data), LIMITS)


@pytest.mark.parametrize("fmt", ["PPM", "ICO", "PDF"])
def test_formats_outside_the_supported_set_are_refused(fmt):
    data = encode(halves((64, 64)), fmt)
    with pytest.raises(InvalidArgument, match="cannot identify image format"):
        decode_image(data, LIMITS)
