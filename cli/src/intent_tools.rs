//! `intent eval` and `intent cv`: measuring the offline classifier on
//! labelled mail, cross-validating it, and fitting its calibration.

use std::path::{Path, PathBuf};

use casebridge::intent::eval::{self, Catalogue, EvalReport, LabelledMail};
use casebridge::intent::{training, CatalogueClassifier, ClassifierOptions, OUT_OF_SCOPE};

use crate::local::CliError;

pub struct EvalOptions {
    pub threshold: Option<f64>,
    pub show_misses: bool,
    pub without_training: bool,
    pub uncalibrated: bool,
}

fn read_catalogue(path: Option<&PathBuf>) -> Result<(Catalogue, &Path), CliError> {
    let path = path.ok_or("--catalogue FILE (or --config FILE) is required")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let catalogue: Catalogue = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(calibration) = &catalogue.classifier.calibration {
        calibration
            .validate()
            .map_err(|e| format!("{}: [classifier.calibration]: {e}", path.display()))?;
    }
    Ok((catalogue, path.parent().unwrap_or(Path::new("."))))
}

fn read_labelled(path: &Path) -> Result<Vec<LabelledMail>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(eval::parse_jsonl(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Every label must be an intent of the catalogue or out-of-scope.
fn check_labels(path: &Path, mails: &[LabelledMail], catalogue: &Catalogue) -> Result<(), CliError> {
    let known = |label: &str| label == OUT_OF_SCOPE || catalogue.intents.iter().any(|i| i.name == label);
    for (line, mail) in mails.iter().enumerate() {
        for label in std::iter::once(&mail.intent).chain(&mail.second) {
            if !known(label) {
                return Err(format!("{}, mail {}: intent {label:?} is not in the catalogue", path.display(), line + 1).into());
            }
        }
    }
    Ok(())
}

/// The threshold a catalogue routes at (its `threshold`, or the one its
/// calibration gives for `route_at_precision`).
fn catalogue_threshold(catalogue: &Catalogue, calibration: Option<&casebridge::intent::Calibration>) -> Result<f64, CliError> {
    match (catalogue.classifier.threshold, catalogue.classifier.route_at_precision, calibration) {
        (Some(threshold), _, _) => Ok(threshold),
        (None, Some(precision), Some(calibration)) => Ok(calibration
            .threshold_for_precision(precision)
            .map_err(|e| format!("route_at_precision: {e}"))?),
        (None, Some(_), None) => Err("route_at_precision needs a calibration; pass --threshold".into()),
        (None, None, _) => Ok(catalogue.classifier.routing_threshold()),
    }
}

/// `intent eval`: the figures of one labelled file (and an out-of-scope file).
pub async fn eval(data: &Path, out_of_scope: Option<&Path>, catalogue: Option<&PathBuf>, options: EvalOptions) -> Result<(), CliError> {
    let (catalogue, folder) = read_catalogue(catalogue)?;
    let mut mails = read_labelled(data)?;
    check_labels(data, &mails, &catalogue)?;
    if let Some(path) = out_of_scope {
        let extra = read_labelled(path)?;
        if let Some((line, mail)) = extra.iter().enumerate().find(|(_, m)| m.intent != OUT_OF_SCOPE) {
            return Err(format!(
                "{}, mail {}: --out-of-scope mails must be labelled {OUT_OF_SCOPE}, not {:?}",
                path.display(),
                line + 1,
                mail.intent
            )
            .into());
        }
        mails.extend(extra);
    }
    let calibration = if options.uncalibrated {
        None
    } else {
        catalogue.classifier.calibration.clone()
    };
    let threshold = match options.threshold {
        Some(threshold) => threshold,
        None => catalogue_threshold(&catalogue, calibration.as_ref())?,
    };
    let locations = if options.without_training {
        &[][..]
    } else {
        &catalogue.classifier.training[..]
    };
    // Scoring mail the classifier trained on measures memory, not accuracy.
    let same_file = |location: &String, file: &Path| match training::TrainingLocation::parse(location, Some(folder)) {
        Ok(training::TrainingLocation::File(path)) => path.canonicalize().ok() == file.canonicalize().ok(),
        _ => false,
    };
    let trained_on: Vec<&Path> = std::iter::once(data)
        .chain(out_of_scope)
        .filter(|file| locations.iter().any(|l| same_file(l, file)))
        .collect();
    let started = std::time::Instant::now();
    let labelled = training::load(locations, Some(folder), None, &catalogue.intents).await?;
    let classes = catalogue.classes(&labelled);
    let classifier = CatalogueClassifier::trained(&classes, &labelled, ClassifierOptions::default()).with_calibration(calibration.clone());
    let built = started.elapsed();
    let report = eval::evaluate(&classifier, &mails, threshold);
    println!(
        "intent eval: {} support mails, {} out-of-scope mails, {} classes, {} training mails, {}, threshold {:.2} (classifier built in {:.1} ms)",
        report.mails,
        report.out_of_scope_mails,
        classes.len(),
        labelled.len(),
        if calibration.is_some() { "calibrated" } else { "uncalibrated" },
        threshold,
        built.as_secs_f64() * 1e3
    );
    for file in trained_on {
        println!(
            "WARNING: {} is in the catalogue's training data: these figures are not held-out.",
            file.display()
        );
    }
    print_report(&report, options.show_misses.then_some(&mails[..]));
    Ok(())
}

fn print_report(report: &EvalReport, misses_of: Option<&[LabelledMail]>) {
    println!("accuracy (support mail, best guess)      {:.3}", report.accuracy);
    if report.mails > 0 {
        println!("coverage at the threshold                {:.3}", report.at.coverage);
        println!("accuracy of covered support mail         {:.3}", report.at.covered_accuracy);
    }
    println!("precision at the threshold (all routed)  {:.3}", report.at.precision);
    if report.out_of_scope_mails > 0 {
        println!("out-of-scope mail held                   {:.3}", report.at.out_of_scope_held);
        println!("  of which taken for out-of-scope        {:.3}", report.out_of_scope_recognised);
    }
    println!(
        "support mail taken for out-of-scope      {:.3}",
        report.support_taken_for_out_of_scope
    );
    println!("\nreliability (every mail; right = best guess right, out-of-scope included):");
    println!("  confidence    mails  mean conf  accuracy  gap");
    for bin in &report.reliability {
        if bin.mails == 0 {
            continue;
        }
        let gap = bin.accuracy - bin.mean_confidence;
        println!(
            "  {:.1}–{:.1}  {:>9}  {:>9.3}  {:>8.3}  {gap:+.3}{}",
            bin.low,
            bin.high,
            bin.mails,
            bin.mean_confidence,
            bin.accuracy,
            if bin.mails >= 10 && gap.abs() > 0.05 {
                "  (more than 0.05 off, ≥ 10 mails)"
            } else {
                ""
            }
        );
    }
    println!("  largest gap in bins of ≥ 10 mails: {:.3}", report.reliability_gap(10));
    if let Some(second) = &report.second {
        println!("\nsecond requests:");
        println!(
            "  found with the right intent   {}/{} ({:.3})",
            second.found,
            second.two_request_mails,
            second.found as f64 / second.two_request_mails.max(1) as f64
        );
        println!("  reported with another intent  {}", second.wrong_intent);
        println!(
            "  false alarms on one-request mail  {}/{} ({:.3})",
            second.false_alarms,
            second.one_request_mails,
            second.false_alarms as f64 / second.one_request_mails.max(1) as f64
        );
    }
    println!("\n{:<22} {:>9} {:>7} {:>5}", "intent", "precision", "recall", "n");
    for f in &report.per_intent {
        println!("{:<22} {:>9.3} {:>7.3} {:>5}", f.intent, f.precision, f.recall, f.support);
    }
    println!("\nconfusions (true → predicted):");
    if report.confusions.is_empty() {
        println!("  none");
    }
    for (truth, predicted, count) in report.confusions.iter().take(15) {
        println!("  {truth} → {predicted}: {count}");
    }
    if let Some(mails) = misses_of {
        println!("\nmisses (mail: true → predicted, confidence, subject):");
        for (index, truth, predicted, confidence) in &report.misses {
            let subject = mails.get(*index).map_or("", |m| m.subject.as_str());
            println!("  {}: {truth} → {predicted} {confidence:.2}  {subject:?}", index + 1);
        }
    }
    println!("\nthreshold  coverage  covered acc  precision  out-of-scope held");
    for at in &report.curve {
        // No out-of-scope mail: nothing to hold, not a hold rate of 0.
        let held = if report.out_of_scope_mails > 0 {
            format!("{:.3}", at.out_of_scope_held)
        } else {
            "-".into()
        };
        println!(
            "  {:.2}      {:.3}     {:.3}        {:.3}      {held}",
            at.threshold, at.coverage, at.covered_accuracy, at.precision
        );
    }
}

pub struct CvOptions {
    pub threshold: Option<f64>,
    /// Fit a calibration (at least this many mails a step) and print it.
    pub calibrate: Option<usize>,
    /// Fit it on these files' out-of-fold scores only (default: all).
    pub calibrate_on: Vec<PathBuf>,
    pub uncalibrated: bool,
    /// `key=value` changes to the classifier's options, for experiments.
    pub set: Vec<String>,
}

/// Applies `key=value` settings to the classifier's options.
fn apply_settings(options: &mut ClassifierOptions, settings: &[String]) -> Result<(), CliError> {
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("--set {setting:?}: expected key=value"))?;
        let number = || value.parse::<f64>().map_err(|_| format!("--set {key}: {value:?} is not a number"));
        let flag = || {
            value
                .parse::<bool>()
                .map_err(|_| format!("--set {key}: {value:?} is not true or false"))
        };
        match key {
            "linear_weight" => options.linear_weight = number()? as f32,
            "full_weight_at" => options.labelled_per_intent_for_full_weight = number()? as f32,
            "second_at" => options.second_at = number()?,
            "second_share" => options.second_share = number()?,
            "second_runner_up" => options.second_runner_up = number()?,
            "epochs" => options.training.epochs = number()? as usize,
            "learning_rate" => options.training.learning_rate = number()? as f32,
            "l2" => options.training.l2 = number()? as f32,
            "stem" => options.features.stem = flag()?,
            "negation" => options.features.negation = flag()?,
            "subject_terms" => options.features.subject_terms = flag()?,
            "skip_reply_subjects" => options.features.skip_reply_subjects = flag()?,
            "char_min" => options.features.char_min = number()? as usize,
            "char_max" => options.features.char_max = number()? as usize,
            _ => return Err(format!("--set: unknown option {key:?}").into()),
        }
    }
    if options.features.char_min == 0 || options.features.char_min > options.features.char_max.max(1) {
        return Err("--set: char_min must be at least 1 and at most char_max".into());
    }
    Ok(())
}

/// `intent cv`: leave-one-file-out cross-validation over labelled files.
pub fn cv(data: &[PathBuf], catalogue: Option<&PathBuf>, cv_options: CvOptions) -> Result<(), CliError> {
    if data.len() < 2 {
        return Err("intent cv needs at least two --data files".into());
    }
    let (catalogue, _) = read_catalogue(catalogue)?;
    let folds = data.iter().map(|path| read_labelled(path)).collect::<Result<Vec<_>, _>>()?;
    for (path, fold) in data.iter().zip(&folds) {
        check_labels(path, fold, &catalogue)?;
    }
    let mut options = ClassifierOptions::default();
    apply_settings(&mut options, &cv_options.set)?;
    let calibration = if cv_options.uncalibrated || cv_options.calibrate.is_some() {
        None
    } else {
        catalogue.classifier.calibration.clone()
    };
    let started = std::time::Instant::now();
    let fit_folds = cv_options
        .calibrate_on
        .iter()
        .map(|file| {
            data.iter()
                .position(|d| d == file)
                .ok_or_else(|| format!("--calibrate-on {}: not one of the --data files", file.display()))
        })
        .collect::<Result<Vec<usize>, String>>()?;
    let fit = cv_options.calibrate.map(|min_bin| eval::Fit { min_bin, folds: fit_folds });
    let cv = eval::cross_validate(&catalogue, &folds, options, calibration.as_ref(), fit.as_ref());
    let used = cv.fitted.as_ref().or(calibration.as_ref());
    let threshold = match cv_options.threshold {
        Some(threshold) => threshold,
        None => catalogue_threshold(&catalogue, used)?,
    };
    println!(
        "intent cv: {} folds, {} mails, {} intents ({:.1} s), {}, threshold {threshold:.2}; each fold scored by a classifier trained on the others",
        folds.len(),
        folds.iter().map(Vec::len).sum::<usize>(),
        catalogue.intents.len(),
        started.elapsed().as_secs_f64(),
        match (&cv.fitted, &calibration) {
            (Some(_), _) => "with the calibration fitted here",
            (None, Some(_)) => "with the catalogue's calibration",
            (None, None) => "uncalibrated",
        }
    );
    println!("  fold                                     mails  accuracy  support acc  coverage  covered acc  out-of-scope held");
    for (k, ((path, fold), accuracy)) in data.iter().zip(&folds).zip(&cv.fold_accuracy).enumerate() {
        let figures = cv.fold_report(k, threshold);
        let held = if figures.out_of_scope_mails > 0 {
            format!("{:.3} of {}", figures.at.out_of_scope_held, figures.out_of_scope_mails)
        } else {
            "-".into()
        };
        println!(
            "  {:<40} {:>4}  {accuracy:.3}     {:.3}        {:.3}     {:.3}        {held}",
            path.display().to_string(),
            fold.len(),
            figures.accuracy,
            figures.at.coverage,
            figures.at.covered_accuracy
        );
    }
    print_report(&cv.report(threshold), None);
    if let Some(fitted) = &cv.fitted {
        let list = |values: &[f64]| values.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(", ");
        println!("\n# Fitted by `intent cv --calibrate` on {} cross-validated mails.", fitted.mails);
        if !cv_options.calibrate_on.is_empty() {
            let files: Vec<String> = cv_options.calibrate_on.iter().map(|f| f.display().to_string()).collect();
            println!("# Fitted on (and precision measured on) {} only.", files.join(", "));
        }
        println!("[classifier.calibration]");
        println!("temperature = {}", fitted.temperature);
        println!("raw = [{}]", list(&fitted.raw));
        println!("calibrated = [{}]", list(&fitted.calibrated));
        println!("thresholds = [{}]", list(&fitted.thresholds));
        println!("precision = [{}]", list(&fitted.precision));
        println!("coverage = [{}]", list(&fitted.coverage));
        println!("mails = {}", fitted.mails);
    }
    Ok(())
}
