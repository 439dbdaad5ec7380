// TEMPORARY STUB until the phantom generator lands (overwritten).
use ndarray::Array3;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnosis {
    Covid,
    OtherPneumonia,
    Normal,
}
impl Diagnosis {
    pub fn as_str(&self) -> &'static str {
        match self {
            Diagnosis::Covid => "covid",
            Diagnosis::OtherPneumonia => "other_pneumonia",
            Diagnosis::Normal => "normal",
        }
    }
}
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub shape: [usize; 3],
    pub spacing_mm: [f64; 3],
}
impl Geometry {
    pub fn small() -> Geometry {
        Geometry {
            shape: [64, 64, 48],
            spacing_mm: [5.6, 5.6, 6.25],
        }
    }
    pub fn ct() -> Geometry {
        Geometry {
            shape: [512, 512, 200],
            spacing_mm: [0.7, 0.7, 1.5],
        }
    }
}
pub struct Phantom {
    pub ct: Array3<i16>,
    pub lesion: Array3<u8>,
    pub lung: Array3<u8>,
    pub diagnosis: Diagnosis,
    pub involvement_pct: f64,
    pub stage: u8,
}
pub fn stage_from_involvement(pct: f64) -> u8 {
    if pct <= 0.0 {
        0
    } else if pct <= 5.0 {
        1
    } else if pct <= 25.0 {
        2
    } else if pct <= 50.0 {
        3
    } else {
        4
    }
}
pub fn generate(g: Geometry, diagnosis: Diagnosis, seed: u64) -> Phantom {
    let [nx, ny, nz] = g.shape;
    let r = (seed % 5) as f64 + 3.0;
    let lesion = Array3::from_shape_fn((nz, ny, nx), |(z, y, x)| {
        u8::from(
            diagnosis != Diagnosis::Normal
                && ((x as f64 - 20.0).powi(2)
                    + (y as f64 - 30.0).powi(2)
                    + (z as f64 - 20.0).powi(2))
                .sqrt()
                    < r,
        )
    });
    let lung = Array3::from_elem((nz, ny, nx), 1u8);
    let ct = lesion.mapv(|v| if v == 1 { -400 } else { -850 });
    let inv = lesion.iter().map(|&v| v as f64).sum::<f64>() / lung.len() as f64 * 100.0;
    Phantom {
        ct,
        lesion,
        lung,
        diagnosis,
        involvement_pct: inv,
        stage: stage_from_involvement(inv),
    }
}
