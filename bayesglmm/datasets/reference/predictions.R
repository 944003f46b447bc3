# glmmTMB's predictions with standard errors, the reference of MLFit.predict (tests/test_predict.py).
# Usage, from the repository's root: Rscript bayesglmm/datasets/reference/predictions.R
# writes bayesglmm/datasets/reference/predictions.json. The data are this package's CSVs.
suppressMessages({library(glmmTMB); library(jsonlite)})
here <- "bayesglmm/datasets"
csv <- function(name, categorical) {
  d <- read.csv(file.path(here, "data", paste0(name, ".csv")))
  for (c in categorical) d[[c]] <- factor(as.character(d[[c]]))
  d
}
# predict() of every combination: re.form = NA (population) / NULL (conditional), type link / response
predictions <- function(m, newdata) {
  out <- list()
  for (re in c("population", "conditional")) for (type in c("link", "response")) {
    p <- if (re == "population") predict(m, newdata = newdata, se.fit = TRUE, re.form = NA, type = type, allow.new.levels = TRUE)
         else predict(m, newdata = newdata, se.fit = TRUE, re.form = NULL, type = type, allow.new.levels = TRUE)
    out[[paste(type, re, sep = "_")]] <- list(fit = unname(as.numeric(p$fit)), se = unname(as.numeric(p$se.fit)))
  }
  out
}
case <- function(m, data, newdata, fit_call, formula_py, notes = NULL) {
  res <- list(r_call = fit_call,
              predict_call = paste("predict(fit, newdata, se.fit = TRUE, re.form = NA | NULL, type = \"link\" | \"response\",",
                                   "allow.new.levels = TRUE); newdata = the fitting data (\"fitting\") or \"newdata\" (\"new\")"),
              formula = formula_py, fixef = as.list(fixef(m)$cond), se = as.list(sqrt(diag(vcov(m)$cond))),
              loglik = as.numeric(logLik(m)), newdata = newdata,
              fitting = predictions(m, data), new = predictions(m, newdata))
  if (!is.null(notes)) res$note <- notes
  res
}
out <- list(produced_by = paste0("bayesglmm/datasets/reference/predictions.R (R ", getRversion(), ", glmmTMB ",
                                 packageVersion("glmmTMB"), ", TMB ", packageVersion("TMB"), ")"))

cbpp <- csv("cbpp", c("herd", "period"))
m <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)
nd <- data.frame(herd = c("1", "3", "15", "new", "new"), period = c("1", "2", "4", "1", "3"), incidence = 0, size = 1)
out$cbpp_laplace <- case(m, cbpp, nd, "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp, family = binomial)",
                         "cbind(incidence, size - incidence) ~ period + (1 | herd)")

ss <- csv("sleepstudy", "Subject")
nd <- data.frame(Subject = c("308", "309", "372", "new", "new"), Days = c(0, 4.5, 12, 0, 5), Reaction = 0)
m <- glmmTMB(Reaction ~ Days + (Days | Subject), data = ss)
out$sleepstudy_ml <- case(m, ss, nd, "glmmTMB(Reaction ~ Days + (Days | Subject), data = sleepstudy)  # ML: REML = FALSE",
                          "Reaction ~ Days + (Days | Subject)")
m <- glmmTMB(Reaction ~ Days + (Days | Subject), data = ss, REML = TRUE)
out$sleepstudy_reml <- case(m, ss, nd, "glmmTMB(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE)",
                            "Reaction ~ Days + (Days | Subject)",
                            paste("With REML = TRUE glmmTMB integrates beta out with the random effects, and its re.form = NA",
                                  "standard errors are sigma * sqrt(x' (X'X)^-1 x), the random effects set aside (3.55 for the",
                                  "intercept row, whose SE in vcov() is 6.82): not a reference. Its re.form = NULL ones are."))

epil <- csv("epil", c("trt", "subject"))
nd <- data.frame(subject = c("1", "2", "59", "new", "new"), trt = c("placebo", "placebo", "progabide", "placebo", "progabide"),
                 lage = c(0.1142, 0.0814, -0.2, 0, 0.3), V4 = c(0, 1, 1, 0, 1), base = c(11, 20, 12, 30, 8), y = 0)
m <- glmmTMB(y ~ trt + lage + V4 + offset(log(base)) + (1 | subject), data = epil, family = poisson)
out$epil_offset_laplace <- case(m, epil, nd,
                                "glmmTMB(y ~ trt + lage + V4 + offset(log(base)) + (1 | subject), data = epil, family = poisson)",
                                "y ~ trt + lage + V4 + offset(np.log(base)) + (1 | subject)")

write_json(out, file.path(here, "reference", "predictions.json"), auto_unbox = TRUE, digits = 10, pretty = TRUE)
cat("done\n")
