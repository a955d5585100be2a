//! A/B testing: which variant a contact gets, and whether one variant
//! converts better than another (two-proportion z-test).

/// The variant for the next contact: the one furthest below its share of
/// the weights once this contact is counted (smooth weighted round-robin).
/// Deterministic, and the split stays within one contact of the weights at
/// every point, so small campaigns get the split asked for. Ties go to the
/// first. `None` without variants.
pub fn pick_variant(weights: &[f64], assigned: &[u64]) -> Option<usize> {
    let total_w: f64 = weights.iter().sum();
    if weights.is_empty() || total_w <= 0.0 || !total_w.is_finite() {
        return None;
    }
    let n = assigned.iter().sum::<u64>() as f64 + 1.0;
    let deficit =
        |i: usize| weights[i] / total_w * n - assigned.get(i).copied().unwrap_or(0) as f64;
    let mut best = 0;
    for i in 1..weights.len() {
        if deficit(i) > deficit(best) + 1e-9 {
            best = i;
        }
    }
    Some(best)
}

/// erfc(x) = 1 - erf(x), with fractional error below 1.2e-7 everywhere
/// (Chebyshev fit, Numerical Recipes' `erfcc`; better than A&S 7.1.26 in
/// the tails, where p-values live).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The error function.
pub fn erf(x: f64) -> f64 {
    1.0 - erfc(x)
}

/// The standard normal CDF, Φ(x).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// The result of comparing two conversion rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    /// (p1 - p2) / pooled standard error.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Two-proportion z-test of `x1` successes in `n1` trials against `x2` in
/// `n2`, pooled. `None` when either side has no trials. When every trial
/// on both sides has the same result there is no evidence either way:
/// z = 0, p = 1.
pub fn two_proportion(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<ZTest> {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return Some(ZTest {
            z: 0.0,
            p_value: 1.0,
        });
    }
    let z = (x1 / n1 - x2 / n2) / se;
    Some(ZTest {
        z,
        p_value: erfc(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn erf_matches_published_values() {
        // Abramowitz & Stegun table 7.1 / high-precision references.
        for (x, want) in [
            (0.0, 0.0),
            (0.1, 0.112_462_916_0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (1.5, 0.966_105_146_5),
            (2.0, 0.995_322_265_0),
            (3.0, 0.999_977_909_5),
        ] {
            assert!(close(erf(x), want, 2e-7), "erf({x}) = {}", erf(x));
            assert!(close(erf(-x), -want, 2e-7), "erf(-{x})");
        }
        // The tail keeps relative accuracy: erfc(4) = 1.541725790e-8.
        assert!(
            close(erfc(4.0) / 1.541_725_790e-8, 1.0, 2e-6),
            "{}",
            erfc(4.0)
        );
    }

    #[test]
    fn normal_cdf_matches_tables() {
        for (x, want) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746_1),
            (-1.0, 0.158_655_253_9),
            (1.959_963_985, 0.975),
            (-2.575_829_304, 0.005),
            (3.0, 0.998_650_101_97),
        ] {
            assert!(
                close(normal_cdf(x), want, 1e-7),
                "Φ({x}) = {}",
                normal_cdf(x)
            );
        }
    }

    #[test]
    fn sixty_of_a_hundred_beats_forty_of_a_hundred() {
        let t = two_proportion(60, 100, 40, 100).unwrap();
        // z = 0.2 / sqrt(0.25 * 0.02) = 2√2; p = erfc(2) = 0.004677735.
        assert!(close(t.z, 2.0 * std::f64::consts::SQRT_2, 1e-9), "{t:?}");
        assert!(close(t.p_value, 0.004_677_735, 1e-8), "{t:?}");
        let r = two_proportion(40, 100, 60, 100).unwrap();
        assert!(close(r.z, -t.z, 1e-12) && close(r.p_value, t.p_value, 1e-15));
        // Equal rates: no difference.
        let e = two_proportion(30, 100, 15, 50).unwrap();
        assert!(
            close(e.z, 0.0, 1e-12) && close(e.p_value, 1.0, 1e-6),
            "{e:?}"
        );
        // 52/100 vs 48/100 is not significant: z = 0.566, p = 0.5716.
        let n = two_proportion(52, 100, 48, 100).unwrap();
        assert!(close(n.p_value, 0.571_608, 1e-5), "{n:?}");
    }

    #[test]
    fn degenerate_samples_give_no_evidence() {
        assert_eq!(two_proportion(0, 0, 5, 10), None);
        assert_eq!(two_proportion(11, 10, 5, 10), None);
        assert_eq!(
            two_proportion(0, 10, 0, 20),
            Some(ZTest {
                z: 0.0,
                p_value: 1.0
            })
        );
        assert_eq!(
            two_proportion(10, 10, 20, 20),
            Some(ZTest {
                z: 0.0,
                p_value: 1.0
            })
        );
    }

    fn split(weights: &[f64], n: usize) -> Vec<u64> {
        let mut counts = vec![0; weights.len()];
        for _ in 0..n {
            let i = pick_variant(weights, &counts).unwrap();
            counts[i] += 1;
        }
        counts
    }

    #[test]
    fn variants_follow_their_weights_at_every_size() {
        assert_eq!(split(&[1.0, 1.0], 200), [100, 100]);
        assert_eq!(split(&[1.0, 1.0], 7), [4, 3]);
        assert_eq!(split(&[3.0, 1.0], 100), [75, 25]);
        assert_eq!(split(&[0.2, 0.3, 0.5], 10), [2, 3, 5]);
        // Within one contact of the exact share all the way.
        let w = [2.0, 5.0, 3.0];
        let mut counts = vec![0u64; 3];
        for n in 1..=333u64 {
            let i = pick_variant(&w, &counts).unwrap();
            counts[i] += 1;
            for i in 0..3 {
                let want = w[i] / 10.0 * n as f64;
                assert!((counts[i] as f64 - want).abs() <= 1.0, "n={n} {counts:?}");
            }
        }
        // Existing assignments are taken into account (a resumed campaign).
        assert_eq!(pick_variant(&[1.0, 1.0], &[10, 3]), Some(1));
        assert_eq!(pick_variant(&[], &[]), None);
    }
}
