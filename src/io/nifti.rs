//! NIfTI-1 volumes: reading label maps for scoring, writing the demo data.
//!
//! The header is parsed by the `nifti` crate (byte order, magic, field layout). The voxel data
//! is then decoded straight from the (gzip) stream into one buffer: the crate's own volume
//! reader rescales every voxel through f32 whenever `scl_slope` is set, which costs more than
//! the decompression itself (../shared/notes/rust-stack.md).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use ndarray::{Array3, ArrayView3};
use nifti::{Endianness, NiftiHeader, NiftiType};

use crate::error::{Error, Result};

/// The geometry of a volume, as needed for shape checks and distances in mm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    /// `[nx, ny, nz]`, x varying fastest on disk.
    pub shape: [usize; 3],
    pub spacing_mm: [f64; 3],
}

impl Geometry {
    pub fn voxels(&self) -> usize {
        self.shape.iter().product()
    }
    /// The ndarray shape, `[z, y, x]`, so that C order equals the NIfTI order on disk.
    pub fn array_shape(&self) -> (usize, usize, usize) {
        (self.shape[2], self.shape[1], self.shape[0])
    }
}

/// A label map (segmentation mask): voxel values 0..=255, indexed `[z, y, x]`.
#[derive(Clone, Debug)]
pub struct LabelVolume {
    pub geometry: Geometry,
    pub labels: Array3<u8>,
}

/// Reads only the header (for validation: shape and spacing without decompressing the volume).
pub fn read_geometry(path: &Path) -> Result<Geometry> {
    // Small buffers: the header is 348 bytes, and a 1 MiB read buffer (zeroed, then filled)
    // cost more than the header itself when every case's header is read.
    let mut reader = open_buffered(path, 4 << 10, 1 << 10)?;
    let header = parse_header(&mut reader, path)?;
    geometry_of(&header, path)
}

/// One axial slice of an image, its intensities (after `scl_slope` and `scl_inter`), x fastest.
#[derive(Clone, Debug)]
pub struct AxialSlice {
    pub geometry: Geometry,
    pub z: usize,
    pub values: Vec<f32>,
    /// Whether the patient's front (anterior) lies towards higher y, as the header's sform
    /// (else qform) says; true, as in RAS, when the header gives no orientation.
    pub anterior_towards_high_y: bool,
}

/// The sign of the anterior component of the voxel y axis in the header's world space (RAS+
/// in NIfTI): from the sform when set, else from the qform's rotation, else RAS.
fn anterior_towards_high_y(header: &NiftiHeader) -> bool {
    if header.sform_code > 0 && header.srow_y[1] != 0.0 {
        return header.srow_y[1] > 0.0;
    }
    if header.qform_code > 0 {
        let (b, c, d) = (
            header.quatern_b as f64,
            header.quatern_c as f64,
            header.quatern_d as f64,
        );
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r11 = a * a + c * c - b * b - d * d;
        if r11 != 0.0 {
            return r11 > 0.0;
        }
    }
    true
}

/// Reads axial slice `z` of an image (a CT in Hounsfield units, say) and nothing after it:
/// the slices before it are decompressed and dropped, so memory stays at one plane whatever
/// the volume's size.
pub fn read_axial_slice(path: &Path, z: usize) -> Result<AxialSlice> {
    let mut reader = open(path)?;
    let header = parse_header(&mut reader, path)?;
    let geometry = geometry_of(&header, path)?;
    let [nx, ny, nz] = geometry.shape;
    if z >= nz {
        return Err(bad(
            path,
            format!("has {nz} axial slices; slice {z} was asked for"),
        ));
    }
    let datatype = header.data_type().map_err(|_| {
        bad(
            path,
            format!("unknown NIfTI datatype code {}", header.datatype),
        )
    })?;
    let width = bytes_per_voxel(datatype).ok_or_else(|| {
        bad(
            path,
            format!("datatype {datatype:?} is not a scalar image podium can read"),
        )
    })?;
    skip_to_data(&mut reader, &header, path)?;
    // geometry_of caps the voxel count, so neither product overflows.
    let plane = nx * ny * width;
    let data_bytes = geometry.voxels() as u64 * width as u64;
    let before = (z * plane) as u64;
    let skipped = std::io::copy(&mut (&mut reader).take(before), &mut std::io::sink())
        .map_err(|e| truncated(path, data_bytes, e))?;
    if skipped < before {
        return Err(truncated(
            path,
            data_bytes,
            std::io::ErrorKind::UnexpectedEof.into(),
        ));
    }
    let mut raw = Vec::new();
    read_plane(&mut reader, &mut raw, plane).map_err(|e| truncated(path, data_bytes, e))?;
    let scaled = header.scl_slope != 0.0 && (header.scl_slope != 1.0 || header.scl_inter != 0.0);
    let (slope, inter) = if scaled {
        (header.scl_slope as f64, header.scl_inter as f64)
    } else {
        (1.0, 0.0)
    };
    let big = header.endianness == Endianness::Big;
    let values = raw
        .chunks_exact(width)
        .map(|b| (decode(datatype, b, big) * slope + inter) as f32)
        .collect();
    Ok(AxialSlice {
        geometry,
        z,
        values,
        anterior_towards_high_y: anterior_towards_high_y(&header),
    })
}

/// Reads an integer label map. Integer and float data types are accepted as long as every voxel
/// holds an integer in 0..=255, since teams write masks from many tools.
pub fn read_labels(path: &Path) -> Result<LabelVolume> {
    let mut labels = Vec::new();
    let geometry = for_each_slice(path, None, |_, _, slice| {
        labels.extend_from_slice(slice);
        Ok(())
    })?;
    let labels = Array3::from_shape_vec(geometry.array_shape(), labels)
        .map_err(|e| bad(path, format!("voxel data does not fit the shape: {e}")))?;
    Ok(LabelVolume { geometry, labels })
}

/// A label map kept only where it is non-zero: per axial slice, the smallest rectangle holding
/// its labels. Scoring compares two masks inside the box around both, so a lung mask costs
/// memory in proportion to the lungs, not to the scan.
#[derive(Clone, Debug)]
pub struct SparseLabels {
    pub geometry: Geometry,
    slices: Vec<SliceCrop>,
}

#[derive(Clone, Debug)]
struct SliceCrop {
    z: usize,
    y0: usize,
    x0: usize,
    width: usize,
    height: usize,
    data: Vec<u8>,
}

/// A box of voxels, `[x0, y0, z0]` to `[x1, y1, z1]` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoxelBox {
    pub min: [usize; 3],
    pub max: [usize; 3],
}

impl VoxelBox {
    pub fn shape(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| self.max[i] - self.min[i])
    }
    pub fn union(self, other: VoxelBox) -> VoxelBox {
        VoxelBox {
            min: [0, 1, 2].map(|i| self.min[i].min(other.min[i])),
            max: [0, 1, 2].map(|i| self.max[i].max(other.max[i])),
        }
    }
}

impl SparseLabels {
    /// Bytes of label data kept (the crops), for the caches that bound their memory.
    pub fn stored_bytes(&self) -> usize {
        self.slices.iter().map(|s| s.data.len()).sum::<usize>()
            + self.slices.len() * std::mem::size_of::<SliceCrop>()
    }

    /// The box around every non-zero voxel; None for an empty mask.
    pub fn bounding_box(&self) -> Option<VoxelBox> {
        self.slices
            .iter()
            .map(|s| VoxelBox {
                min: [s.x0, s.y0, s.z],
                max: [s.x0 + s.width, s.y0 + s.height, s.z + 1],
            })
            .reduce(VoxelBox::union)
    }

    /// The labels inside `frame` as a dense array, x fastest. Voxels of the mask outside the
    /// frame are dropped, so the frame should contain [`Self::bounding_box`].
    pub fn to_dense(&self, frame: VoxelBox) -> Vec<u8> {
        let [fw, fh, fd] = frame.shape();
        let mut out = vec![0u8; fw * fh * fd];
        for s in &self.slices {
            if s.z < frame.min[2] || s.z >= frame.max[2] {
                continue;
            }
            let z = s.z - frame.min[2];
            for row in 0..s.height {
                let y = s.y0 + row;
                if y < frame.min[1] || y >= frame.max[1] {
                    continue;
                }
                let src = &s.data[row * s.width..(row + 1) * s.width];
                let start = s.x0.max(frame.min[0]);
                let end = (s.x0 + s.width).min(frame.max[0]);
                if start >= end {
                    continue;
                }
                let dst = (z * fh + (y - frame.min[1])) * fw + (start - frame.min[0]);
                out[dst..dst + (end - start)].copy_from_slice(&src[start - s.x0..end - s.x0]);
            }
        }
        out
    }

    /// The axial slice holding the most voxels of any of `labels`, with that count; None when
    /// no slice holds one. Ties go to the lowest z, so the choice is reproducible.
    pub fn largest_slice(&self, labels: &[u8]) -> Option<(usize, u64)> {
        let mut best: Option<(usize, u64)> = None;
        for s in &self.slices {
            let area = s.data.iter().filter(|v| labels.contains(v)).count() as u64;
            if area > 0 && best.is_none_or(|(z, a)| area > a || (area == a && s.z < z)) {
                best = Some((s.z, area));
            }
        }
        best
    }

    /// Whether each voxel of axial slice `z` holds one of `labels`, x fastest (`nx * ny`).
    pub fn slice_mask(&self, z: usize, labels: &[u8]) -> Vec<bool> {
        let [nx, ny, _] = self.geometry.shape;
        let mut mask = vec![false; nx * ny];
        for s in self.slices.iter().filter(|s| s.z == z) {
            for (row, values) in s.data.chunks_exact(s.width).enumerate() {
                let start = (s.y0 + row) * nx + s.x0;
                for (m, v) in mask[start..start + s.width].iter_mut().zip(values) {
                    *m = labels.contains(v);
                }
            }
        }
        mask
    }

    /// Voxels holding `label`, a foreground label (1-255).
    pub fn count(&self, label: u8) -> u64 {
        self.slices
            .iter()
            .map(|s| s.data.iter().filter(|&&v| v == label).count() as u64)
            .sum()
    }
}

/// Reads a label map as [`SparseLabels`], decoding slice by slice so that the whole volume is
/// never in memory.
pub fn read_sparse_labels(path: &Path) -> Result<SparseLabels> {
    sparse_labels(path, None)
}

/// [`read_sparse_labels`] of a mask that must lie on a grid of `expected_shape` (`[nx, ny, nz]`),
/// such as a team's prediction on the image's grid. Another shape is refused from the header
/// alone, before a byte of voxel data is decoded or a buffer sized: the header is the team's to
/// write, and only the organizers' grid says how much memory a mask may take.
pub fn read_sparse_labels_expecting(
    path: &Path,
    expected_shape: [usize; 3],
) -> Result<SparseLabels> {
    sparse_labels(path, Some(expected_shape))
}

fn sparse_labels(path: &Path, expected_shape: Option<[usize; 3]>) -> Result<SparseLabels> {
    let mut slices = Vec::new();
    let geometry = for_each_slice(path, expected_shape, |geometry, z, slice| {
        let nx = geometry.shape[0];
        let rows: Vec<usize> = slice
            .chunks_exact(nx)
            .enumerate()
            .filter(|(_, row)| has_label(row))
            .map(|(y, _)| y)
            .collect();
        let (Some(&y0), Some(&y1)) = (rows.first(), rows.last()) else {
            return Ok(());
        };
        let mut x0 = nx;
        let mut x1 = 0;
        for row in slice[y0 * nx..(y1 + 1) * nx].chunks_exact(nx) {
            if let (Some(a), Some(b)) = (
                row.iter().position(|&v| v != 0),
                row.iter().rposition(|&v| v != 0),
            ) {
                x0 = x0.min(a);
                x1 = x1.max(b + 1);
            }
        }
        let (width, height) = (x1 - x0, y1 + 1 - y0);
        let mut data = Vec::with_capacity(width * height);
        for row in slice[y0 * nx..(y1 + 1) * nx].chunks_exact(nx) {
            data.extend_from_slice(&row[x0..x1]);
        }
        slices.push(SliceCrop {
            z,
            y0,
            x0,
            width,
            height,
            data,
        });
        Ok(())
    })?;
    Ok(SparseLabels { geometry, slices })
}

/// Whether a row holds any non-zero voxel. Most rows of a mask are empty, so this scan is most
/// of a mask's read: a fold over fixed-size blocks compiles to vector code, where a
/// short-circuiting `any` goes byte by byte.
fn has_label(row: &[u8]) -> bool {
    let mut blocks = row.chunks_exact(64);
    blocks.any(|block| block.iter().fold(0, |acc, &v| acc | v) != 0)
        || blocks.remainder().iter().any(|&v| v != 0)
}

/// Decodes a label map slice by slice (z outermost), converting any integer or integral float
/// data type to u8, and calls `f` with each axial slice (x fastest). Returns the geometry.
///
/// The header is untrusted (a team writes its masks): a shape other than `expected_shape` is
/// refused before anything else, buffers grow only as voxel bytes actually arrive, and the
/// stream must end where the header says the voxel data does.
fn for_each_slice(
    path: &Path,
    expected_shape: Option<[usize; 3]>,
    mut f: impl FnMut(&Geometry, usize, &[u8]) -> Result<()>,
) -> Result<Geometry> {
    let mut reader = open(path)?;
    let header = parse_header(&mut reader, path)?;
    if let Some(expected) = expected_shape {
        let shape = shape_of(&header, path)?;
        if shape != expected {
            return Err(Error::msg(format!(
                "{} has shape {shape:?}, the image has {expected:?}; write the mask on the image's grid",
                path.display()
            )));
        }
    }
    let geometry = geometry_of(&header, path)?;
    let datatype = header.data_type().map_err(|_| {
        bad(
            path,
            format!("unknown NIfTI datatype code {}", header.datatype),
        )
    })?;
    let width = bytes_per_voxel(datatype).ok_or_else(|| {
        bad(
            path,
            format!("datatype {datatype:?} cannot hold a label map; write uint8 (NIfTI code 2)"),
        )
    })?;
    skip_to_data(&mut reader, &header, path)?;
    let [nx, ny, nz] = geometry.shape;
    // geometry_of caps the voxel count, so neither product overflows.
    let plane = nx * ny;
    let data_bytes = geometry.voxels() as u64 * width as u64;
    let scaled = header.scl_slope != 0.0 && (header.scl_slope != 1.0 || header.scl_inter != 0.0);
    let plain = datatype == NiftiType::Uint8 && !scaled;
    let (slope, inter) = if scaled {
        (header.scl_slope as f64, header.scl_inter as f64)
    } else {
        (1.0, 0.0)
    };
    let big = header.endianness == Endianness::Big;
    let mut raw = Vec::new();
    let mut converted = Vec::new();
    for z in 0..nz {
        read_plane(&mut reader, &mut raw, plane * width)
            .map_err(|e| truncated(path, data_bytes, e))?;
        if plain {
            f(&geometry, z, &raw)?;
            continue;
        }
        // `raw` holds the plane's bytes, read from the file: this allocation is backed by data.
        converted.resize(plane, 0);
        for (i, bytes) in raw.chunks_exact(width).enumerate() {
            let v = decode(datatype, bytes, big) * slope + inter;
            if !(v.fract() == 0.0 && (0.0..=255.0).contains(&v)) {
                return Err(bad(
                    path,
                    format!(
                        "voxel (x={}, y={}, z={z}) holds {v}; a label map holds integer labels 0-255",
                        i % nx,
                        i / nx
                    ),
                ));
            }
            converted[i] = v as u8;
        }
        f(&geometry, z, &converted)?;
    }
    expect_end(&mut reader, path, &geometry, datatype, data_bytes)?;
    Ok(geometry)
}

/// Plane buffers grow by at most this much (or by doubling) ahead of the bytes read into them,
/// so that a header claiming a huge plane over a short stream costs about what the stream
/// holds, not what the header claims.
const PLANE_GROWTH_BYTES: usize = 1 << 20;

/// Reads the next `len` bytes into `buf`, reusing it when it already has that length (every
/// plane after the first).
fn read_plane(reader: &mut dyn Read, buf: &mut Vec<u8>, len: usize) -> std::io::Result<()> {
    if buf.len() == len {
        return reader.read_exact(buf);
    }
    buf.clear();
    while buf.len() < len {
        let start = buf.len();
        let step = (len - start).min(start.max(PLANE_GROWTH_BYTES));
        buf.resize(start + step, 0);
        reader.read_exact(&mut buf[start..])?;
    }
    Ok(())
}

/// A voxel type podium writes.
pub trait Voxel: Copy {
    const DATATYPE: NiftiType;
    fn put_le(self, out: &mut Vec<u8>);
}

impl Voxel for u8 {
    const DATATYPE: NiftiType = NiftiType::Uint8;
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

impl Voxel for i16 {
    const DATATYPE: NiftiType = NiftiType::Int16;
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Writes a `.nii.gz` (or `.nii`) volume indexed `[z, y, x]` with the given voxel spacing, via a
/// temporary file renamed into place, so a reader never sees half a volume.
pub fn write_volume<T: Voxel>(
    path: &Path,
    data: ArrayView3<T>,
    spacing_mm: [f64; 3],
    level: u32,
) -> Result<()> {
    let (nz, ny, nx) = data.dim();
    let header = header_bytes([nx, ny, nz], spacing_mm, T::DATATYPE);
    let tmp = path.with_extension("partial");
    let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let gz = path.to_string_lossy().ends_with(".gz");
    let result = (|| -> std::io::Result<()> {
        let mut sink: Box<dyn Write> = if gz {
            Box::new(GzEncoder::new(
                BufWriter::with_capacity(1 << 20, file),
                Compression::new(level),
            ))
        } else {
            Box::new(BufWriter::with_capacity(1 << 20, file))
        };
        sink.write_all(&header)?;
        // Write slice by slice: bounded memory whatever the volume size.
        let mut buffer = Vec::with_capacity(nx * ny * std::mem::size_of::<T>());
        for slice in data.outer_iter() {
            buffer.clear();
            for &v in slice.iter() {
                v.put_le(&mut buffer);
            }
            sink.write_all(&buffer)?;
        }
        sink.flush()?;
        drop(sink);
        Ok(())
    })();
    result.map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))
}

/// A NIfTI-1 single-file header (348 bytes) plus the 4-byte empty extension flag, little-endian,
/// with an axis-aligned RAS-ish affine from the spacing (sform and qform both set).
fn header_bytes(shape: [usize; 3], spacing: [f64; 3], datatype: NiftiType) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let put_i16 =
        |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_i32 =
        |h: &mut Vec<u8>, at: usize, v: i32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put_f32 =
        |h: &mut Vec<u8>, at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put_i32(&mut h, 0, 348);
    h[38] = b'r'; // `regular`, as nibabel writes it
    let dims = [
        3,
        shape[0] as i16,
        shape[1] as i16,
        shape[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d);
    }
    let (code, bits) = match datatype {
        NiftiType::Int16 => (4, 16),
        _ => (2, 8),
    };
    put_i16(&mut h, 70, code);
    put_i16(&mut h, 72, bits);
    let pixdim = [1.0, spacing[0], spacing[1], spacing[2], 1.0, 0.0, 0.0, 0.0];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p as f32);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 0.0); // scl_slope 0: no scaling
    h[123] = 2 | 8; // xyzt_units: mm, s
    let descrip = b"podium synthetic volume";
    h[148..148 + descrip.len()].copy_from_slice(descrip);
    put_i16(&mut h, 252, 1); // qform_code: scanner
    put_i16(&mut h, 254, 1); // sform_code: scanner
                             // Centre the volume on the origin; identity rotation (quaternion b=c=d=0).
    let offset: Vec<f64> = (0..3)
        .map(|i| -(shape[i] as f64 - 1.0) * spacing[i] / 2.0)
        .collect();
    for (i, o) in offset.iter().enumerate() {
        put_f32(&mut h, 268 + 4 * i, *o as f32);
    }
    for row in 0..3 {
        for col in 0..4 {
            let v = if col == row {
                spacing[row]
            } else if col == 3 {
                offset[row]
            } else {
                0.0
            };
            put_f32(&mut h, 280 + 16 * row + 4 * col, v as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

fn open(path: &Path) -> Result<Box<dyn Read>> {
    open_buffered(path, 1 << 20, 1 << 16)
}

/// [`open`] with the given buffer sizes for the file and for the decompressed stream.
fn open_buffered(path: &Path, file_buffer: usize, data_buffer: usize) -> Result<Box<dyn Read>> {
    let mut file = BufReader::with_capacity(
        file_buffer,
        File::open(path).map_err(|e| Error::io("open", path, e))?,
    );
    // Sniff the gzip magic rather than trusting the file name.
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io("read", path, e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let stream = head.chain(file);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            data_buffer,
            MultiGzDecoder::new(stream),
        )))
    } else {
        Ok(Box::new(stream))
    }
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn parse_header(reader: &mut dyn Read, path: &Path) -> Result<NiftiHeader> {
    let header = NiftiHeader::from_reader(&mut *reader).map_err(|e| {
        bad(
            path,
            format!("not a readable NIfTI-1 header ({e}); write a .nii.gz NIfTI-1 file"),
        )
    })?;
    if header.sizeof_hdr != 348 {
        return Err(bad(
            path,
            format!(
                "header size {} is not NIfTI-1's 348 (NIfTI-2 is not supported)",
                header.sizeof_hdr
            ),
        ));
    }
    Ok(header)
}

/// The most voxels podium reads from one volume: 2^31, 2 GiB as uint8, more than a whole-body
/// CT of 1024 x 1024 x 2000. It keeps every size computed from a header far from overflow,
/// and a header claiming more is refused before anything is allocated.
pub const MAX_VOXELS: u64 = 1 << 31;

/// The most bytes of header extensions (between the 348-byte header and `vox_offset`) podium
/// skips: 16 MiB, far more than the metadata tools store there (a few KiB), so that a forged
/// `vox_offset` cannot make podium decompress gigabytes before the voxel data.
const MAX_EXTENSION_BYTES: u64 = 16 << 20;

/// `[nx, ny, nz]` of a 3D volume, from the header alone.
fn shape_of(header: &NiftiHeader, path: &Path) -> Result<[usize; 3]> {
    let dim = header.dim;
    let ndim = dim[0] as usize;
    if !(3..=7).contains(&ndim) || dim[4..=ndim].iter().any(|&d| d > 1) {
        return Err(bad(
            path,
            format!(
                "has {ndim} dimensions {:?}; expected a 3D volume",
                &dim[1..=ndim.min(7)]
            ),
        ));
    }
    let shape = [dim[1] as usize, dim[2] as usize, dim[3] as usize];
    if shape.contains(&0) {
        return Err(bad(
            path,
            format!("has an empty dimension: shape {shape:?}"),
        ));
    }
    Ok(shape)
}

fn geometry_of(header: &NiftiHeader, path: &Path) -> Result<Geometry> {
    let shape = shape_of(header, path)?;
    // Each dimension is below 2^16, so the product fits in a u64.
    let voxels: u64 = shape.iter().map(|&n| n as u64).product();
    if voxels > MAX_VOXELS {
        return Err(bad(
            path,
            format!(
                "has shape {shape:?}, {voxels} voxels: more than the {MAX_VOXELS} podium reads from one volume"
            ),
        ));
    }
    let mut spacing_mm = [0.0; 3];
    for (s, p) in spacing_mm.iter_mut().zip(&header.pixdim[1..4]) {
        let p = p.abs() as f64;
        *s = if p.is_finite() && p > 0.0 { p } else { 1.0 };
    }
    Ok(Geometry { shape, spacing_mm })
}

fn skip_to_data(reader: &mut dyn Read, header: &NiftiHeader, path: &Path) -> Result<()> {
    // Saturating: NaN becomes 0 and a huge value u64::MAX, both refused below.
    let offset = header.vox_offset as u64;
    if offset < 348 {
        // `.hdr`/`.img` pairs have vox_offset 0; podium's contract is single files.
        return Err(bad(
            path,
            "vox_offset is below 348: write a single-file .nii/.nii.gz, not a .hdr/.img pair"
                .into(),
        ));
    }
    let skip = offset - 348;
    if skip > MAX_EXTENSION_BYTES {
        return Err(bad(
            path,
            format!(
                "vox_offset {} puts {skip} bytes of header extensions before the voxel data; podium skips at most {MAX_EXTENSION_BYTES} (write the file without extensions, vox_offset 352)",
                header.vox_offset
            ),
        ));
    }
    let copied = std::io::copy(&mut reader.take(skip), &mut std::io::sink())
        .map_err(|e| Error::io("read", path, e))?;
    if copied < skip {
        return Err(bad(
            path,
            "the file ends inside the header extension".into(),
        ));
    }
    Ok(())
}

/// After the voxel data the stream must end. A single byte is asked for: the decoder produces
/// at most one buffer (64 KiB) of what follows, however much a gzip bomb would expand to, and a
/// read of 0 comes only once the gzip trailer (CRC and length) has been checked.
fn expect_end(
    reader: &mut dyn Read,
    path: &Path,
    geometry: &Geometry,
    datatype: NiftiType,
    data_bytes: u64,
) -> Result<()> {
    let mut probe = [0u8; 1];
    loop {
        return match reader.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(bad(
                path,
                format!(
                    "holds more voxel data than its header declares (shape {:?} of {datatype:?}, {data_bytes} bytes); write exactly the voxels of the header, with nothing after them",
                    geometry.shape
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Err(bad(path, format!("is corrupt after the voxel data: {e}"))),
        };
    }
}

fn bytes_per_voxel(t: NiftiType) -> Option<usize> {
    Some(match t {
        NiftiType::Uint8 | NiftiType::Int8 => 1,
        NiftiType::Int16 | NiftiType::Uint16 => 2,
        NiftiType::Int32 | NiftiType::Uint32 | NiftiType::Float32 => 4,
        NiftiType::Int64 | NiftiType::Uint64 | NiftiType::Float64 => 8,
        _ => return None,
    })
}

fn decode(t: NiftiType, b: &[u8], big: bool) -> f64 {
    macro_rules! num {
        ($ty:ty) => {{
            let bytes = b.try_into().expect("chunk width matches the datatype");
            (if big {
                <$ty>::from_be_bytes(bytes)
            } else {
                <$ty>::from_le_bytes(bytes)
            }) as f64
        }};
    }
    match t {
        NiftiType::Uint8 => b[0] as f64,
        NiftiType::Int8 => b[0] as i8 as f64,
        NiftiType::Int16 => num!(i16),
        NiftiType::Uint16 => num!(u16),
        NiftiType::Int32 => num!(i32),
        NiftiType::Uint32 => num!(u32),
        NiftiType::Float32 => num!(f32),
        NiftiType::Int64 => num!(i64),
        NiftiType::Uint64 => num!(u64),
        NiftiType::Float64 => num!(f64),
        _ => f64::NAN,
    }
}

fn bad(path: &Path, what: String) -> Error {
    Error::msg(format!("{}: {what}", path.display()))
}

fn truncated(path: &Path, expected: u64, e: std::io::Error) -> Error {
    bad(
        path,
        format!("is truncated or corrupt: expected {expected} bytes of voxel data ({e})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Array3<u8> {
        Array3::from_shape_fn((4, 3, 5), |(z, y, x)| ((x + 2 * y + 3 * z) % 3) as u8)
    }

    #[test]
    fn round_trips_a_gzipped_label_map_with_its_geometry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.nii.gz");
        write_volume(&path, sample().view(), [0.7, 0.8, 1.5], 6).unwrap();
        let read = read_labels(&path).unwrap();
        assert_eq!(read.labels, sample());
        assert_eq!(read.geometry.shape, [5, 3, 4]);
        assert!((read.geometry.spacing_mm[2] - 1.5).abs() < 1e-6);
        assert_eq!(read_geometry(&path).unwrap(), read.geometry);
    }

    #[test]
    fn reads_masks_written_by_the_nifti_crate_with_scl_slope_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crate.nii.gz");
        // The crate writes Fortran-order arrays indexed [x, y, z].
        let fortran = sample().reversed_axes();
        nifti::writer::WriterOptions::new(&path)
            .write_nifti(&fortran)
            .unwrap();
        let read = read_labels(&path).unwrap();
        assert_eq!(read.labels, sample());
    }

    #[test]
    fn accepts_int16_and_float_labels_but_not_fractions() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("i16.nii");
        let as_i16 = sample().mapv(|v| v as i16);
        write_volume(&ok, as_i16.view(), [1.0; 3], 1).unwrap();
        assert_eq!(read_labels(&ok).unwrap().labels, sample());

        let frac = dir.path().join("f.nii.gz");
        let floats = sample().mapv(|v| v as f32 + 0.5).reversed_axes();
        nifti::writer::WriterOptions::new(&frac)
            .write_nifti(&floats)
            .unwrap();
        let err = read_labels(&frac).unwrap_err().to_string();
        assert!(err.contains("integer labels"), "{err}");
    }

    #[test]
    fn a_label_is_found_at_any_place_of_a_row() {
        for len in [0, 1, 63, 64, 65, 130, 512] {
            let mut row = vec![0u8; len];
            assert!(!has_label(&row), "{len}");
            for at in 0..len {
                row[at] = 2;
                assert!(has_label(&row), "{len} {at}");
                row[at] = 0;
            }
        }
    }

    #[test]
    fn sparse_labels_keep_every_label_and_rebuild_the_dense_volume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.nii.gz");
        let mut volume = Array3::<u8>::zeros((6, 7, 8));
        volume[[1, 2, 3]] = 1;
        volume[[1, 5, 6]] = 2;
        volume[[4, 3, 1]] = 1;
        write_volume(&path, volume.view(), [1.0; 3], 6).unwrap();
        let sparse = read_sparse_labels(&path).unwrap();
        let bbox = sparse.bounding_box().unwrap();
        assert_eq!(
            bbox,
            VoxelBox {
                min: [1, 2, 1],
                max: [7, 6, 5]
            }
        );
        assert_eq!((sparse.count(1), sparse.count(2)), (2, 1));
        let whole = VoxelBox {
            min: [0, 0, 0],
            max: [8, 7, 6],
        };
        assert_eq!(sparse.to_dense(whole), volume.as_slice().unwrap());
        let crop = sparse.to_dense(bbox);
        assert_eq!(crop.len(), 6 * 4 * 4);
        assert_eq!(crop.iter().map(|&v| v as u32).sum::<u32>(), 4);

        let empty = dir.path().join("e.nii.gz");
        write_volume(&empty, Array3::<u8>::zeros((2, 2, 2)).view(), [1.0; 3], 6).unwrap();
        assert_eq!(read_sparse_labels(&empty).unwrap().bounding_box(), None);
    }

    #[test]
    fn one_axial_slice_is_read_with_its_intensities_and_the_largest_lesion_slice_found() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("ct.nii.gz");
        let ct =
            Array3::from_shape_fn((4, 3, 5), |(z, y, x)| -1000 + (100 * z + 10 * y + x) as i16);
        write_volume(&image, ct.view(), [0.7, 0.8, 1.5], 6).unwrap();
        for z in 0..4 {
            let slice = read_axial_slice(&image, z).unwrap();
            let expected: Vec<f32> = ct
                .slice(ndarray::s![z, .., ..])
                .iter()
                .map(|&v| v as f32)
                .collect();
            assert_eq!(slice.values, expected, "slice {z}");
            assert_eq!(slice.geometry.shape, [5, 3, 4]);
        }
        assert!(read_axial_slice(&image, 0).unwrap().anterior_towards_high_y);
        // A scan stored front to back (as DICOM's LPS order), its sform saying so.
        let flipped = dir.path().join("lps.nii");
        let mut bytes = header_bytes([5, 3, 4], [1.0; 3], NiftiType::Int16);
        bytes[300..304].copy_from_slice(&(-1.0f32).to_le_bytes()); // srow_y[1]
        bytes.extend(ct.iter().flat_map(|v| v.to_le_bytes()));
        std::fs::write(&flipped, bytes).unwrap();
        assert!(
            !read_axial_slice(&flipped, 0)
                .unwrap()
                .anterior_towards_high_y
        );
        let err = read_axial_slice(&image, 4).unwrap_err().to_string();
        assert!(
            err.contains("ct.nii.gz") && err.contains("4 axial slices"),
            "{err}"
        );

        let mask = dir.path().join("m.nii.gz");
        let mut labels = Array3::<u8>::zeros((4, 3, 5));
        labels[[1, 0, 0]] = 1;
        labels[[2, 1, 1]] = 1;
        labels[[2, 2, 4]] = 1;
        labels[[3, 0, 0]] = 2;
        labels[[3, 0, 1]] = 2;
        labels[[3, 0, 2]] = 2;
        write_volume(&mask, labels.view(), [1.0; 3], 6).unwrap();
        let sparse = read_sparse_labels(&mask).unwrap();
        assert_eq!(sparse.largest_slice(&[1]), Some((2, 2)));
        assert_eq!(sparse.largest_slice(&[1, 2]), Some((3, 3)));
        assert_eq!(sparse.largest_slice(&[7]), None);
        let plane = sparse.slice_mask(2, &[1]);
        let expected: Vec<bool> = labels
            .slice(ndarray::s![2, .., ..])
            .iter()
            .map(|&v| v == 1)
            .collect();
        assert_eq!(plane, expected);
    }

    #[test]
    fn truncated_and_garbage_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.nii.gz");
        write_volume(&path, sample().view(), [1.0; 3], 6).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.nii.gz");
        std::fs::write(&cut, &bytes[..bytes.len() - 12]).unwrap();
        let err = read_labels(&cut).unwrap_err().to_string();
        assert!(err.contains("cut.nii.gz"), "{err}");

        let junk = dir.path().join("junk.nii.gz");
        std::fs::write(&junk, b"this is not a volume").unwrap();
        let err = read_labels(&junk).unwrap_err().to_string();
        assert!(
            err.contains("junk.nii.gz") && err.contains("NIfTI"),
            "{err}"
        );
    }

    /// A gzip member holding `bytes`.
    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(1));
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A header (with its empty extension flag) claiming `shape` of NIfTI datatype `code`.
    fn forged_header(shape: [usize; 3], code: i16, bits: i16) -> Vec<u8> {
        let mut h = header_bytes(shape, [1.0; 3], NiftiType::Uint8);
        h[70..72].copy_from_slice(&code.to_le_bytes());
        h[72..74].copy_from_slice(&bits.to_le_bytes());
        h
    }

    #[test]
    fn a_header_claiming_a_huge_volume_is_refused_before_anything_is_allocated() {
        let dir = tempfile::tempdir().unwrap();
        // 65535^3 float64 voxels: 2.25e15 bytes, in a file of about a hundred.
        let bomb = dir.path().join("bomb.nii.gz");
        std::fs::write(&bomb, gzip(&forged_header([65535; 3], 64, 64))).unwrap();
        let err = read_sparse_labels_expecting(&bomb, [5, 3, 4])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bomb.nii.gz has shape [65535, 65535, 65535], the image has [5, 3, 4]"),
            "{err}"
        );
        // Without an expected grid (the truth, `podium validate`) the voxel cap refuses it.
        for err in [
            read_labels(&bomb).unwrap_err().to_string(),
            read_sparse_labels(&bomb).unwrap_err().to_string(),
        ] {
            assert!(
                err.contains("bomb.nii.gz") && err.contains("more than the"),
                "{err}"
            );
        }
        // Under the cap (one 46000 x 46000 plane of float64, 16.9 GB) but with no data: memory
        // follows the bytes the stream holds, and the short stream is an error.
        let plane = dir.path().join("plane.nii.gz");
        let mut bytes = forged_header([46000, 46000, 1], 64, 64);
        bytes.extend_from_slice(&[0u8; 4096]);
        std::fs::write(&plane, gzip(&bytes)).unwrap();
        let err = read_labels(&plane).unwrap_err().to_string();
        assert!(err.contains("truncated or corrupt"), "{err}");
    }

    #[test]
    fn a_stream_longer_than_its_header_declares_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.nii.gz");
        write_volume(&path, sample().view(), [1.0; 3], 6).unwrap();
        let valid = std::fs::read(&path).unwrap();
        let mut raw = header_bytes([5, 3, 4], [1.0; 3], NiftiType::Uint8);
        raw.extend_from_slice(sample().as_slice().unwrap());

        // Extra voxel bytes in the same gzip member, in a second member (as `cat a.gz b.gz`
        // makes), and after an uncompressed volume.
        let mut same_member = raw.clone();
        same_member.extend_from_slice(&[0u8; 1 << 16]);
        let mut two_members = valid.clone();
        two_members.extend_from_slice(&gzip(&[0u8; 1 << 16]));
        let mut plain = raw.clone();
        plain.push(0);
        for (name, bytes) in [
            ("same.nii.gz", gzip(&same_member)),
            ("members.nii.gz", two_members),
            ("plain.nii", plain),
        ] {
            let file = dir.path().join(name);
            std::fs::write(&file, bytes).unwrap();
            let err = read_labels(&file).unwrap_err().to_string();
            assert!(
                err.contains(name)
                    && err.contains("holds more voxel data than its header declares"),
                "{err}"
            );
        }

        // An empty second member adds no byte, and the trailer is still checked.
        let empty_member = dir.path().join("empty.nii.gz");
        std::fs::write(&empty_member, [valid.clone(), gzip(&[])].concat()).unwrap();
        assert_eq!(read_labels(&empty_member).unwrap().labels, sample());
        let mut bad_crc = valid.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 0xff;
        let corrupt = dir.path().join("crc.nii.gz");
        std::fs::write(&corrupt, bad_crc).unwrap();
        let err = read_labels(&corrupt).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
    }

    #[test]
    fn a_forged_vox_offset_is_refused_before_skipping_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = header_bytes([5, 3, 4], [1.0; 3], NiftiType::Uint8);
        h[108..112].copy_from_slice(&1e12f32.to_le_bytes());
        let path = dir.path().join("offset.nii.gz");
        std::fs::write(&path, gzip(&h)).unwrap();
        let err = read_labels(&path).unwrap_err().to_string();
        assert!(err.contains("header extensions"), "{err}");
    }
}
