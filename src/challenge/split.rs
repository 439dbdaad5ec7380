//! Public and private splits of a hidden phase, Kaggle style: the live leaderboard of a round
//! shows only the public cases, so teams cannot tune on the whole test set; the private cases
//! decide the final ranking (`podium leaderboard --final`).

use std::collections::BTreeSet;

use super::{Challenge, PhasePaths};
use crate::error::{Error, Result};
use crate::io::table::Table;

/// Which cases a scoring pass covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseSelection {
    /// Every case of the phase.
    All,
    /// The public split, or every case when the phase has no split.
    Public,
    /// The private split (`--final`).
    Private,
}

/// A phase's split: the public cases. None when the phase has none.
pub fn public_cases(
    challenge: &Challenge,
    phase: &PhasePaths,
    cases: &[String],
) -> Result<Option<BTreeSet<String>>> {
    let file = phase.truth.join("splits.csv");
    if file.is_file() {
        return read_splits(&file, cases).map(Some);
    }
    let def = challenge.phase(&phase.name)?;
    let Some(fraction) = def.public_fraction else {
        return Ok(None);
    };
    let seed = def.split_seed.unwrap_or(challenge.scoring.seed);
    // The cases ordered by a seeded hash of their id: the assignment depends only on the
    // seed and the ids, never on the order of cases.csv, and the public share is exact.
    let mut keyed: Vec<(u64, &String)> = cases.iter().map(|c| (mix(seed, c), c)).collect();
    keyed.sort();
    let n_public = ((cases.len() as f64 * fraction).round() as usize).clamp(1, cases.len().max(1));
    Ok(Some(
        keyed
            .into_iter()
            .take(n_public)
            .map(|(_, c)| c.clone())
            .collect(),
    ))
}

/// The cases `selection` keeps, in phase order.
pub fn select(
    cases: &[String],
    public: Option<&BTreeSet<String>>,
    selection: CaseSelection,
) -> Vec<String> {
    cases
        .iter()
        .filter(|c| match (selection, public) {
            (CaseSelection::All, _) | (_, None) => true,
            (CaseSelection::Public, Some(p)) => p.contains(*c),
            (CaseSelection::Private, Some(p)) => !p.contains(*c),
        })
        .cloned()
        .collect()
}

fn read_splits(path: &std::path::Path, cases: &[String]) -> Result<BTreeSet<String>> {
    let table = Table::read(path)?;
    let idx = table.require(&["case_id".to_string(), "split".to_string()])?;
    let known: BTreeSet<&String> = cases.iter().collect();
    let mut public = BTreeSet::new();
    let mut problems = Vec::new();
    for row in &table.rows {
        let (case, split) = (&row.fields[idx[0]], row.fields[idx[1]].as_str());
        if !known.contains(case) {
            problems.push(format!(
                "{}:{}: case {case:?} is not in the phase's cases.csv",
                path.display(),
                row.line
            ));
        }
        match split {
            "public" => {
                public.insert(case.clone());
            }
            "private" => {}
            other => problems.push(format!(
                "{}:{}: split {other:?} must be `public` or `private`",
                path.display(),
                row.line
            )),
        }
    }
    if !problems.is_empty() {
        return Err(Error::List(problems));
    }
    Ok(public)
}

/// SplitMix64 of the seed and an FNV-1a hash of the id.
fn mix(seed: u64, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_partitions_the_cases_in_phase_order() {
        let cases: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let public: BTreeSet<String> = ["d", "b"].map(String::from).into();
        assert_eq!(
            select(&cases, Some(&public), CaseSelection::Public),
            ["b", "d"]
        );
        assert_eq!(
            select(&cases, Some(&public), CaseSelection::Private),
            ["a", "c"]
        );
        assert_eq!(select(&cases, Some(&public), CaseSelection::All), cases);
        assert_eq!(
            select(&cases, None, CaseSelection::Private),
            cases,
            "no split: all"
        );
    }

    #[test]
    fn the_hash_depends_on_the_seed_and_the_id_only() {
        assert_eq!(mix(1, "case-1"), mix(1, "case-1"));
        assert_ne!(mix(1, "case-1"), mix(2, "case-1"));
        assert_ne!(mix(1, "case-1"), mix(1, "case-2"));
    }
}
