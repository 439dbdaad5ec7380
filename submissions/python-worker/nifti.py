"""NIfTI-1 (.nii.gz) volumes with the standard library only: gzip, struct and array.

read() returns a Volume whose voxels are in file order (x fastest, then y, then z);
write_mask() writes a uint8 label map on the grid of an image read with read(), its header
copied (dims, pixdim, qform and sform), so that podium's scorer finds the image's grid.
"""

import array
import gzip
import struct
import sys

# NIfTI datatype code -> array typecode (item sizes as on every platform podium runs on).
TYPECODES = {2: "B", 4: "h", 8: "i", 16: "f", 64: "d", 256: "b", 512: "H", 768: "I",
             1024: "q", 1280: "Q"}


class Volume:
    def __init__(self, header, endian, shape, spacing, voxels):
        self.header = header    # the 348 header bytes, as read
        self.endian = endian    # "<" or ">"
        self.shape = shape      # (nx, ny, nz)
        self.spacing = spacing  # voxel size in mm, (x, y, z)
        self.voxels = voxels    # array of nx * ny * nz numbers, x fastest


def read(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    header = data[:348]
    endian = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
    if struct.unpack(endian + "i", header[:4])[0] != 348:
        raise ValueError(f"{path}: not a NIfTI-1 file")
    dim = struct.unpack(endian + "8h", header[40:56])
    if dim[0] < 3 or any(d > 1 for d in dim[4:dim[0] + 1]):
        raise ValueError(f"{path}: expected a 3-D volume, dim = {dim}")
    shape = dim[1:4]
    datatype = struct.unpack(endian + "h", header[70:72])[0]
    if datatype not in TYPECODES:
        raise ValueError(f"{path}: unsupported datatype {datatype}")
    pixdim = struct.unpack(endian + "8f", header[76:108])
    spacing = tuple(abs(p) if p else 1.0 for p in pixdim[1:4])
    vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
    slope, inter = struct.unpack(endian + "2f", header[112:120])

    voxels = array.array(TYPECODES[datatype])
    count = shape[0] * shape[1] * shape[2]
    voxels.frombytes(data[vox_offset:vox_offset + count * voxels.itemsize])
    if len(voxels) != count:
        raise ValueError(f"{path}: the file ends inside the voxel data")
    if voxels.itemsize > 1 and endian != ("<" if sys.byteorder == "little" else ">"):
        voxels.byteswap()
    if slope not in (0.0, 1.0) or inter != 0.0:
        voxels = array.array("f", (v * slope + inter for v in voxels))
    return Volume(header, endian, shape, spacing, voxels)


def write_mask(path, image, mask):
    """Writes `mask` (bytes, one 0/1 per voxel in file order) on the grid of `image`."""
    h = bytearray(image.header)
    e = image.endian
    struct.pack_into(e + "2h", h, 70, 2, 8)            # datatype uint8, bitpix 8
    struct.pack_into(e + "3f", h, 108, 352.0, 1.0, 0.0)  # vox_offset, scl_slope, scl_inter
    struct.pack_into(e + "2f", h, 124, 0.0, 0.0)       # cal_max, cal_min
    h[344:348] = b"n+1\0"                              # single-file NIfTI-1
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(bytes(h) + b"\0\0\0\0" + bytes(mask))  # no header extensions
