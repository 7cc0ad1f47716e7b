//! `--risk-cost` and `--risk-training N`: what risk selection costs a document, and what training
//! a model costs.

use super::*;

/// Risk profiling's CPU per document, alone: the same work `Gateway::prepare` adds (the facts,
/// then each routed agency's selection, serialized), over the corpus, on this thread.
pub(super) fn risk_cost(docs: &[Doc], seconds: u64) {
    let text = std::fs::read_to_string(repo().join("config/ventanilla.toml")).unwrap();
    let region: ventanilla::config::RegionConfig = toml::from_str(&text).unwrap();
    let risk = ventanilla::risk::Risk::new(&region).expect("the shipped risk settings compile");
    let agencies: Vec<Vec<ventanilla::domain::AgencyId>> = docs
        .iter()
        .map(|d| d.deliveries.iter().filter_map(|(t, _)| t.strip_prefix("agency.").and_then(|a| ventanilla::domain::AgencyId::parse(a).ok())).collect())
        .collect();
    println!("\n## risk profiling's cost (the shipped rules and budgets, {} rules)", risk.profile().rules().len());
    selection_cost(&risk, docs, &agencies, seconds, "rules alone");
    // With a live model, trained on 50,000 planted findings (its histories: 200 sellers).
    let planted = ventanilla::risk::model::planted(50_000, 7);
    let examples: Vec<ventanilla::risk::model::Example> =
        planted.iter().map(|(f, y, at)| ventanilla::risk::model::Example { facts: f, irregular: *y, at: *at }).collect();
    let (model, histories) = ventanilla::risk::model::train(&examples, 0.1, None).expect("a model trains on planted findings");
    risk.put_model(Some((std::sync::Arc::new(model), 1)), histories);
    selection_cost(&risk, docs, &agencies, seconds, "rules and a live model");
}

/// Runs `risk`'s facts and selections over `docs` for `seconds`, and prints their CPU cost.
fn selection_cost(risk: &ventanilla::risk::Risk, docs: &[Doc], agencies: &[Vec<ventanilla::domain::AgencyId>], seconds: u64, label: &str) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (mut documents, mut selections, mut selected) = (0u64, 0u64, 0u64);
    let (cpu0, started) = (cpu_seconds("self"), Instant::now());
    while started.elapsed() < Duration::from_secs(seconds) {
        for (d, agencies) in docs.iter().zip(agencies) {
            let e = &d.envelope;
            let facts = risk.facts(&d.document_type, &text(&e["origin"]), &text(&e["destination"]), &e["payload"]);
            for a in agencies {
                let s = risk.select(a, &facts);
                selected += u64::from(s.channel != ventanilla::risk::Channel::Green);
                std::hint::black_box(serde_json::to_string(&s).unwrap());
                selections += 1;
            }
            documents += 1;
        }
    }
    let cpu = cpu_seconds("self") - cpu0;
    println!(
        "{label}: {documents} documents, {selections} selections ({:.1}% not green) in {:.1} s of CPU: **{:.1} µs of CPU per document** ({:.1} per selection); target at most 50",
        100.0 * selected as f64 / selections.max(1) as f64,
        cpu,
        1e6 * cpu / documents.max(1) as f64,
        1e6 * cpu / selections.max(1) as f64
    );
}

/// Trains on `n` planted findings (`ventanilla::risk::model::planted`): the product's logistic
/// regression, a decision tree and gradient-boosted trees (smartcore's regression trees fitted
/// round after round to the log loss's gradient: smartcore has no boosting of its own) on the
/// same features, each judged on the most recent fifth at a 5% budget. smartcore's random forest
/// gives no probabilities, so it cannot rank documents within a budget: it is timed, not judged.
pub(super) fn risk_training(n: usize) {
    use smartcore::linalg::basic::arrays::Array;
    use smartcore::linalg::basic::matrix::DenseMatrix;
    use ventanilla::risk::model;
    println!("\n## risk model training on {n} planted findings (one seller in ten undervalues and is found irregular half the time)");
    let planted = model::planted(n, 11);
    let examples: Vec<model::Example> = planted.iter().map(|(f, y, at)| model::Example { facts: f, irregular: *y, at: *at }).collect();
    let (cpu0, t0) = (cpu_seconds("self"), Instant::now());
    let (m, _) = model::train(&examples, 0.05, None).expect("trains");
    println!(
        "logistic regression (the product's, features included): {:.1} s ({:.1} s of CPU); precision at a 5% budget {:.3} on {} held back, base rate {:.3} ({:.1}x); target under 60 s",
        t0.elapsed().as_secs_f64(), cpu_seconds("self") - cpu0, m.validation.precision_at_budget, m.validation.held_back, m.validation.base_rate,
        m.validation.precision_at_budget / m.validation.base_rate.max(1e-9)
    );
    let (x, y, _) = model::online_features(&examples);
    let split = (x.len() as f64 * (1.0 - model::HELD_BACK)).round() as usize;
    let rows = |r: &[[f64; 8]]| DenseMatrix::from_2d_vec(&r.iter().map(|v| v.to_vec()).collect::<Vec<_>>()).unwrap();
    let (cpu0, t0) = (cpu_seconds("self"), Instant::now());
    let tree = smartcore::tree::decision_tree_classifier::DecisionTreeClassifier::fit(
        &rows(&x[..split]),
        &y[..split].to_vec(),
        smartcore::tree::decision_tree_classifier::DecisionTreeClassifierParameters::default().with_max_depth(8),
    )
    .unwrap();
    let fitted = t0.elapsed().as_secs_f64();
    let p = tree.predict_proba(&rows(&x[split..])).unwrap();
    let scored: Vec<(f64, u32)> = (0..x.len() - split).map(|i| (*p.get((i, 1)), y[split + i])).collect();
    println!(
        "decision tree, depth 8 (the same features): {fitted:.1} s ({:.1} s of CPU); precision at a 5% budget {:.3}",
        cpu_seconds("self") - cpu0,
        model::precision_of_ranking(scored, 0.05)
    );
    // Gradient boosting on the log loss: each round fits a shallow regression tree to the
    // residuals y - p of the score so far, and adds a share of it.
    let (rounds, depth, rate) = (50, 3u16, 0.3);
    let (cpu0, t0) = (cpu_seconds("self"), Instant::now());
    let train = rows(&x[..split]);
    let labels: Vec<f64> = y[..split].iter().map(|&v| f64::from(v)).collect();
    let base = labels.iter().sum::<f64>() / labels.len().max(1) as f64;
    let prior = (base / (1.0 - base)).ln();
    let mut score = vec![prior; split];
    let mut trees = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let residuals: Vec<f64> = score.iter().zip(&labels).map(|(s, l)| l - 1.0 / (1.0 + (-s).exp())).collect();
        let tree = smartcore::tree::decision_tree_regressor::DecisionTreeRegressor::fit(
            &train,
            &residuals,
            smartcore::tree::decision_tree_regressor::DecisionTreeRegressorParameters::default().with_max_depth(depth).with_min_samples_leaf(50),
        )
        .unwrap();
        for (s, step) in score.iter_mut().zip(tree.predict(&train).unwrap()) {
            *s += rate * step;
        }
        trees.push(tree);
    }
    let fitted = t0.elapsed().as_secs_f64();
    let held = rows(&x[split..]);
    let mut held_score = vec![prior; x.len() - split];
    for tree in &trees {
        for (s, step) in held_score.iter_mut().zip(tree.predict(&held).unwrap()) {
            *s += rate * step;
        }
    }
    let scored: Vec<(f64, u32)> = held_score.into_iter().zip(y[split..].iter().copied()).collect();
    println!(
        "gradient-boosted trees, {rounds} rounds of depth {depth}, learning rate {rate} (the same features): {fitted:.1} s ({:.1} s of CPU); precision at a 5% budget {:.3}",
        cpu_seconds("self") - cpu0,
        model::precision_of_ranking(scored, 0.05)
    );
    let k = split.min(200_000);
    let t0 = Instant::now();
    let _forest = smartcore::ensemble::random_forest_classifier::RandomForestClassifier::fit(
        &rows(&x[..k]),
        &y[..k].to_vec(),
        smartcore::ensemble::random_forest_classifier::RandomForestClassifierParameters::default().with_n_trees(50).with_max_depth(8),
    )
    .unwrap();
    println!("random forest, 50 trees of depth 8, on the first {k}: {:.1} s (classes only: no ranking within a budget)", t0.elapsed().as_secs_f64());
}
