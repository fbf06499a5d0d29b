"""zoolib.data.images: greyscale = channel mean, crop, resize, shapes, and errors naming the
file."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoolib.data.images import load_image, load_images

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
DECALS_PNG = RAW / "gz_decals_dr5" / "images" / "J104924.86-002547.5.png"
GZ1_JPEG = RAW / "sdss_gz1_sample" / "images" / "587724198279184570.jpeg"


@pytest.fixture
def rgb(rng) -> np.ndarray:
    return rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)  # (H, W, RGB), not square


def save(array: np.ndarray, path: Path, **kwargs) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


def test_greyscale_is_the_channel_mean(tmp_path, rgb):
    grey = load_image(save(rgb, tmp_path / "a.png"), size=20)  # full-height square, no resize
    assert grey.shape == (20, 20, 1) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[..., 0], np.rint(rgb[:, 5:25].mean(axis=2)))


def test_greyscale_is_not_pillow_luminance(tmp_path):
    green = np.zeros((8, 8, 3), np.uint8)
    green[..., 1] = 255
    assert load_image(save(green, tmp_path / "g.png"), 8)[0, 0, 0] == 85  # 'L' would give 150


def test_rgb_and_crop_fraction(tmp_path, rgb):
    out = load_image(save(rgb, tmp_path / "a.png"), size=10, channels=3, crop_fraction=0.5)
    assert out.shape == (10, 10, 3)
    np.testing.assert_array_equal(out, rgb[5:15, 10:20])  # centred 10x10 square


def test_jpeg_greyscale_matches_decoded_pixels(tmp_path, rgb):
    path = save(rgb, tmp_path / "a.jpg", quality=90)
    decoded = np.asarray(Image.open(path).convert("RGB"))  # lossy: compare with what Pillow reads
    grey = load_image(path, size=20)
    np.testing.assert_array_equal(grey[..., 0], np.rint(decoded[:, 5:25].mean(axis=2)))


def test_resize_is_antialiased(tmp_path):
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = load_image(save(np.stack([board] * 3, axis=2), tmp_path / "b.png"), 8)
    assert np.abs(out.astype(int) - 127.5).max() <= 2  # nearest-neighbour would give 0 or 255


def test_greyscale_file_gives_three_equal_channels(tmp_path, rgb):
    path = save(rgb[..., 0], tmp_path / "l.png")
    out = load_image(path, 20, channels=3)
    assert (out == out[..., :1]).all()


def test_real_png_and_jpeg():
    png = load_image(DECALS_PNG, 128, channels=3, crop_fraction=0.75)
    jpeg = load_image(GZ1_JPEG, 64)
    assert png.shape == (128, 128, 3) and jpeg.shape == (64, 64, 1)
    assert png.dtype == jpeg.dtype == np.uint8 and png.std() > 5 and jpeg.std() > 5


def test_load_images_in_order(tmp_path, rgb):
    paths = [save(np.roll(rgb, i, axis=1), tmp_path / f"{i}.png") for i in range(5)]
    batch, failures = load_images(paths, 12, channels=3, crop_fraction=0.8, n_jobs=3)
    assert batch.shape == (5, 12, 12, 3) and batch.dtype == np.uint8 and failures == []
    for i, path in enumerate(paths):
        np.testing.assert_array_equal(batch[i], load_image(path, 12, 3, 0.8))
    empty, _ = load_images([], 12)
    assert empty.shape == (0, 12, 12, 1)


def test_load_images_raise_and_skip(tmp_path, rgb):
    good = save(rgb, tmp_path / "good.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    paths = [good, tmp_path / "missing.png", good, tmp_path / "junk.png"]
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        load_images(paths, 16)
    batch, failures = load_images(paths, 16, on_error="skip")
    assert batch.shape == (2, 16, 16, 1)
    assert [(f["index"], Path(f["file"]).name) for f in failures] == [
        (1, "missing.png"),
        (3, "junk.png"),
    ]
    assert "junk.png" in failures[1]["reason"]


# --- errors name the file --------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        load_image(tmp_path / "nope.png", 16)


def test_corrupt_and_non_image_files(tmp_path, rgb):
    (tmp_path / "notes.jpg").write_text("this is text, not a JPEG")
    with pytest.raises(ValueError, match=r"cannot read image .*notes\.jpg"):
        load_image(tmp_path / "notes.jpg", 16)
    whole = save(rgb, tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png", 16)


def test_crop_smaller_than_output_is_refused(tmp_path, rgb):
    path = save(rgb, tmp_path / "small.png")  # 30x20: a full crop is 20x20
    assert load_image(path, 20).shape == (20, 20, 1)
    with pytest.raises(ValueError, match=r"small\.png is 30x20 px.*keeps 10x10.*size=20"):
        load_image(path, 20, crop_fraction=0.5)
    with pytest.raises(ValueError, match=r"small\.png.*size=21"):
        load_image(path, 21)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"crop_fraction": 1.2}, "crop_fraction"),
        ({"crop_fraction": 0.0}, "crop_fraction"),
        ({"channels": 2}, "channels"),
    ],
)
def test_bad_arguments(tmp_path, rgb, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_image(save(rgb, tmp_path / "a.png"), 8, **kwargs)


@pytest.mark.skipif(importlib.util.find_spec("astropy") is not None, reason="astropy installed")
def test_fits_without_astropy_says_what_to_install(tmp_path):
    (tmp_path / "g.fits").write_bytes(b"SIMPLE  =                    T")
    with pytest.raises(ImportError, match=r"g\.fits needs astropy"):
        load_image(tmp_path / "g.fits", 8)


def _png_claiming(tmp_path, width, height):
    """A valid 1x1 PNG whose header claims width x height (the CRC recomputed)."""
    import io
    import struct
    import zlib

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IHDR")
    data[start + 4 : start + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[start : start + 17])) & 0xFFFFFFFF
    data[start + 17 : start + 21] = struct.pack(">I", crc)
    path = tmp_path / "huge.png"
    path.write_bytes(bytes(data))
    return path


def test_bad_files_give_one_line_errors_naming_them(tmp_path):
    from PIL import Image as PILImage

    from zoolib.data import images

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png is empty \(0 bytes\)"):
        images.load_image(empty, 16)
    huge = _png_claiming(tmp_path, 30000, 30000)  # beyond Pillow's own bomb limit
    with pytest.raises(ValueError, match=r"huge\.png is larger than the 50,000,000 pixels"):
        images.load_image(huge, 16)
    big = _png_claiming(tmp_path, 8000, 8000)  # within Pillow's limit, beyond ours
    with pytest.raises(ValueError, match=r"huge\.png is 8000x8000 px, larger than the 50,000,000"):
        images.load_image(big, 16)
    whole = tmp_path / "whole.jpg"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(whole)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    truncated = r"cannot read image .*cut\.jpg: image file is truncated"
    with pytest.raises(ValueError, match=truncated) as err:
        images.load_image(cut, 16)
    assert "\n" not in str(err.value)
    # the same problems are skipped and listed, in order, by load_images
    loaded, failures = images.load_images([whole, empty, huge, cut], 16, on_error="skip")
    assert len(loaded) == 1 and [f["index"] for f in failures] == [1, 2, 3]


def test_sixteen_bit_images_are_stretched_not_clipped(tmp_path):
    from PIL import Image as PILImage

    from zoolib.data import images

    values = np.linspace(1000, 60000, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    PILImage.fromarray(values).save(path)
    assert PILImage.open(path).mode.startswith("I")
    pixels = images.load_image(path, 64)[..., 0]
    assert pixels.min() == 0 and pixels.max() == 255  # not all 255, as clipping would give
    assert np.corrcoef(pixels.ravel(), values.ravel())[0, 1] > 0.999


def test_reduced_jpeg_decoding_stays_close_to_a_full_decode(tmp_path):
    from PIL import Image as PILImage

    from zoolib.data import images

    yy, xx = np.mgrid[:423, :423]
    blob = 200 * np.exp(-((xx - 211) ** 2 + (yy - 211) ** 2) / (2 * 40.0**2))
    rgb = np.clip(np.stack([blob, 0.8 * blob, 0.6 * blob], -1) + 10, 0, 255).astype(np.uint8)
    path = tmp_path / "cutout.jpg"
    PILImage.fromarray(rgb).save(path, quality=95)
    for crop in (1.0, 0.4):
        fast = images.load_image(path, 64, 3, crop).astype(float)
        with PILImage.open(path) as im:  # reference: full decode, same crop and filter
            full = im.convert("RGB")
        side = round(crop * 423)
        box = (
            (423 - side) // 2,
            (423 - side) // 2,
            (423 - side) // 2 + side,
            (423 - side) // 2 + side,
        )
        ref = np.asarray(full.resize((64, 64), PILImage.Resampling.LANCZOS, box=box), float)
        assert np.abs(fast - ref).mean() < 1.5 and np.abs(fast - ref).max() < 12
    with pytest.raises(ValueError, match="smaller than size=64"):
        images.load_image(path, 64, 1, 0.1)  # 42 px kept: refused, as before


def test_errors_raised_inside_pillow_name_the_file(tmp_path):
    from PIL import Image as PILImage

    from zoolib.data import images

    good = tmp_path / "good.png"
    PILImage.new("L", (32, 32)).save(good)
    data = bytearray(good.read_bytes())
    data[11] = 0  # a broken IHDR chunk: Pillow raises a bare ValueError
    broken = tmp_path / "broken.png"
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        images.load_image(broken, 16)
    loaded, failures = images.load_images([good, broken], 16, on_error="skip")
    assert len(loaded) == 1 and failures[0]["index"] == 1


def _cutout(side=96, seed=0):
    """A raw survey-like band: sky 100 with noise 5, a faint extended galaxy, a bright star."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    galaxy = 40 * np.exp(-np.hypot(xx - side / 2, yy - side / 2) / (side / 10))
    star = 1e5 * np.exp(-((xx - 10) ** 2 + (yy - 12) ** 2) / 2.0)
    return 100 + rng.normal(0, 5, (side, side)) + galaxy + star


def test_fits_round_trip_one_band_and_a_stack_of_three(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    from zoolib.data import images

    band = _cutout()
    band[5, 70] = np.nan
    fits.PrimaryHDU(band).writeto(tmp_path / "g.fits")
    fits.PrimaryHDU(band).writeto(tmp_path / "g.fits.gz")  # astropy compresses by the name
    grey = images.load_image(tmp_path / "g.fits", 96)
    assert grey.shape == (96, 96, 1) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, images.load_image(tmp_path / "g.fits.gz", 96))
    expected = np.rint(images.stretch(band))  # 1 band: grey is that band itself
    np.testing.assert_array_equal(grey[..., 0], expected.astype(np.uint8))
    # stack (bands, H, W): band order is R, G, B; here R brightest, B faintest
    stack = np.stack([2.0 * band, band, 0.5 * band])
    fits.ImageHDU(stack).writeto(tmp_path / "grz.fits")  # an extension HDU, empty primary
    rgb = images.load_image(tmp_path / "grz.fits", 48, channels=3).astype(float)
    centre = rgb[20:28, 20:28].mean(axis=(0, 1))
    assert centre[0] > centre[1] > centre[2]


def test_the_asinh_stretch_shows_the_galaxy_where_min_max_hid_it():
    from zoolib.data import images

    band = _cutout()
    asinh = images.stretch(band)
    linear = (band - band.min()) / (band.max() - band.min()) * 255
    assert (linear > 10).mean() < 0.01  # the star sets the scale: the galaxy is black
    assert (asinh > 10).mean() > 0.10  # the galaxy's outskirts rise above the sky
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(xx - 48, yy - 48)
    profile = [asinh[(r >= a) & (r < a + 4)].mean() for a in (0, 8, 16, 24)]
    assert profile == sorted(profile, reverse=True)  # monotone: brighter stays brighter
    sky = np.median(band)
    assert abs(images.stretch(np.full((8, 8), sky) + np.eye(8))[0, 1]) == 0  # sky is black


def test_bad_fits_files_give_one_line_errors(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    from zoolib.data import images

    corrupt = tmp_path / "corrupt.fits"
    corrupt.write_bytes(np.random.default_rng(0).bytes(2880))
    nan = tmp_path / "nan.fits"
    fits.PrimaryHDU(np.full((32, 32), np.nan)).writeto(nan)
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="E", array=np.zeros(3))])]).writeto(table)  # fmt: skip
    header = fits.Header({"SIMPLE": True, "BITPIX": -32, "NAXIS": 2,
                          "NAXIS1": 20000, "NAXIS2": 20000})  # fmt: skip
    huge = tmp_path / "huge.fits"
    huge.write_bytes(header.tostring().encode())  # the header alone: data would be 1.6 GB
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    cases = {
        corrupt: r"cannot read FITS image .*corrupt\.fits",
        nan: r"nan\.fits has a band with no finite pixel",
        table: r"table\.fits has no image data",
        huge: r"huge\.fits is 20000x20000 px, larger than the 50,000,000 pixels",
        empty: r"empty\.fits is empty \(0 bytes\)",
    }
    for path, match in cases.items():
        with pytest.raises(ValueError, match=match) as err:
            images.load_image(path, 16)
        assert "\n" not in str(err.value), path
    loaded, failures = images.load_images(list(cases), 16, on_error="skip")
    assert len(loaded) == 0 and [f["index"] for f in failures] == [0, 1, 2, 3, 4]


def test_fits_cubes_and_malformed_headers_are_refused_in_one_line(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    from zoolib.data import images

    header = fits.Header({"SIMPLE": True, "BITPIX": -32, "NAXIS": 3,
                          "NAXIS1": 2000, "NAXIS2": 2000, "NAXIS3": 40})  # fmt: skip
    cube = tmp_path / "cube.fits"
    cube.write_bytes(header.tostring().encode())  # 160 M pixels in all: refused unread
    with pytest.raises(ValueError, match=r"cube\.fits is 2000x2000x40 px, larger than"):
        images.load_image(cube, 16)
    odd = tmp_path / "odd.fits"
    odd.write_bytes(fits.Header({"SIMPLE": True, "BITPIX": 7, "NAXIS": 2, "NAXIS1": 8,
                                 "NAXIS2": 8}).tostring().encode() + bytes(2880))  # fmt: skip
    with pytest.raises(ValueError, match=r"cannot read FITS image .*odd\.fits"):
        images.load_image(odd, 4)
