# glmmTMB (and lme4::glmer.nb) fits of the dispersion families: negative binomial NB2, beta-binomial, Gamma.
# The reference of the families "negativebinomial", "betabinomial" and "gamma".
# Usage, from the repository's root: Rscript bayesglmm/datasets/reference/dispersion.R
# writes bayesglmm/datasets/data/{salamander_counts,gamma_sim,nb_offset_sim}.csv (the data are then read back
# from the CSVs, so the fits are of exactly what the package ships) and bayesglmm/datasets/reference/dispersion.json.
# Every categorical column is factor(as.character(x)): levels sorted alphabetically, as the package's treatment coding.
suppressMessages({library(glmmTMB); library(lme4); library(jsonlite)})
here <- "bayesglmm/datasets"
csv <- function(name, categorical) {
  d <- read.csv(file.path(here, "data", paste0(name, ".csv")))
  for (c in categorical) d[[c]] <- factor(as.character(d[[c]]))
  d
}
write_data <- function(d, name) write.csv(d, file.path(here, "data", paste0(name, ".csv")), row.names = FALSE)

## ---- data ----
# Salamanders (Price et al. 2016, via glmmTMB): all columns, factors as plain strings (site is an ordered factor there).
data(Salamanders, package = "glmmTMB")
sal <- Salamanders
for (c in c("site", "mined", "spp")) sal[[c]] <- as.character(sal[[c]])
write_data(sal, "salamander_counts")

# Gamma: 40 groups of 4..12 rows; log mu = 1 + 0.3 x - 0.4 (trt == "b") + b_g, b_g ~ N(0, 0.5^2); y ~ Gamma(shape 2.5, mean mu)
set.seed(20240611)
sizes <- sample(4:12, 40, replace = TRUE)
g <- rep(sprintf("g%02d", 1:40), sizes)
n <- length(g)
x <- rnorm(n)
trt <- sample(c("a", "b"), n, replace = TRUE)
exposure <- runif(n, 0.5, 2)
b <- rnorm(40, 0, 0.5)
mu <- exp(1 + 0.3 * x - 0.4 * (trt == "b") + b[match(g, sprintf("g%02d", 1:40))])
y <- rgamma(n, shape = 2.5, rate = 2.5 / mu)
write_data(data.frame(g = g, x = x, trt = trt, exposure = exposure, y = y), "gamma_sim")

# NB2 with an offset: 30 groups of 6..10 rows; log mu = log(t) + 0.5 + 0.4 x + b_g (SD 0.6); y ~ NB2(mu, theta = 1.7)
set.seed(20240612)
sizes <- sample(6:10, 30, replace = TRUE)
g <- rep(sprintf("s%02d", 1:30), sizes)
n <- length(g)
x <- rnorm(n)
t <- runif(n, 0.5, 3)
b <- rnorm(30, 0, 0.6)
mu <- exp(log(t) + 0.5 + 0.4 * x + b[match(g, sprintf("s%02d", 1:30))])
y <- rnbinom(n, size = 1.7, mu = mu)
write_data(data.frame(g = g, x = x, t = t, y = y), "nb_offset_sim")

## ---- helpers ----
# Conditional log density of each row given its linear predictor (glmmTMB's parametrisations, checked below
# against TMB's own joint objective): nbinom2 Var = mu + mu^2/theta; betabinomial p ~ Beta(mu phi, (1 - mu) phi);
# Gamma shape k, mean mu (scale mu/k).
cond_logdens <- function(family, link, d, resp, eta, disp) {
  mu <- switch(link, log = exp(eta), logit = plogis(eta), inverse = 1 / eta)
  switch(family,
         nbinom2 = dnbinom(d[[resp]], size = disp, mu = mu, log = TRUE),
         betabinomial = {
           k <- d$incidence; nn <- d$size
           lchoose(nn, k) + lbeta(k + mu * disp, nn - k + (1 - mu) * disp) - lbeta(mu * disp, (1 - mu) * disp)
         },
         Gamma = dgamma(d[[resp]], shape = disp, scale = mu / disp, log = TRUE))
}
# our-scale dispersion from glmmTMB's internal betad: nbinom2 theta = exp(betad); betabinomial phi = exp(betad);
# Gamma shape = exp(betad) (sigma = exp(-betad/2) = 1/sqrt(shape))
disp_of <- function(m) exp(m$obj$env$parList()$betad)

# TMB's joint negative log-likelihood at the optimum (fixed + conditional modes) against the same sum from R's
# densities: equal numbers confirm the parametrisation (random intercept models only).
joint_check <- function(m, family, link, d, resp, grp) {
  e <- m$obj$env; p <- e$last.par.best
  bb <- p[names(p) == "b"]; sd <- exp(p[names(p) == "theta"][1])
  eta <- predict(m, re.form = NA, type = "link") + bb[as.integer(d[[grp]])]
  r <- -sum(cond_logdens(family, link, d, resp, eta, disp_of(m))) - sum(dnorm(bb, 0, sd, log = TRUE))
  list(tmb_joint_nll = e$f(p, order = 0), r_densities_joint_nll = unname(r))
}

# Exact marginal log-likelihood at the glmmTMB estimates: per group, integrate() of the conditional likelihood times
# N(b; 0, sd^2), scaled by its value at the conditional mode for stability, over the mode +- 20 conditional SDs
# (sqrt of ranef's condVar; checked against +- 30) (random intercept models only).
loglik_integrated <- function(m, family, link, d, resp, grp) {
  p <- m$obj$env$last.par.best
  sd <- exp(p[names(p) == "theta"][1]); disp <- disp_of(m)
  eta0 <- as.numeric(predict(m, re.form = NA, type = "link"))
  re <- ranef(m)$cond[[grp]]
  modes <- re[, 1]; spost <- sqrt(attr(re, "condVar")[1, 1, ])
  lev <- levels(d[[grp]])
  total <- 0
  for (j in seq_along(lev)) {
    i <- which(d[[grp]] == lev[j])
    lf <- function(b) sapply(b, function(bj) {
      v <- sum(cond_logdens(family, link, d[i, ], resp, eta0[i] + bj, disp)) + dnorm(bj, 0, sd, log = TRUE)
      if (is.finite(v)) v else -Inf })
    c0 <- lf(modes[j])
    f <- function(b) exp(lf(b) - c0)
    I <- integrate(f, modes[j] - 20 * spost[j], modes[j] + 20 * spost[j], rel.tol = 1e-12, abs.tol = 0, subdivisions = 1000L)
    I2 <- integrate(f, modes[j] - 30 * spost[j], modes[j] + 30 * spost[j], rel.tol = 1e-12, abs.tol = 0, subdivisions = 1000L)
    if (abs(I$value - I2$value) > 1e-9 * I$value) warning("integrate disagreement in group ", lev[j])
    total <- total + c0 + log(I$value)
  }
  unname(total)
}

predictions <- function(m, newdata) {
  out <- list()
  for (re in c("population", "conditional")) for (type in c("link", "response")) {
    p <- if (re == "population") predict(m, newdata = newdata, se.fit = TRUE, re.form = NA, type = type)
         else predict(m, newdata = newdata, se.fit = TRUE, re.form = NULL, type = type)
    out[[paste(type, re, sep = "_")]] <- list(fit = unname(as.numeric(p$fit)), se = unname(as.numeric(p$se.fit)))
  }
  out
}

varcorr <- function(m) {
  lapply(VarCorr(m)$cond, function(v) {
    sds <- attr(v, "stddev"); cor <- attr(v, "correlation")
    res <- list(sd = as.list(sds))
    if (length(sds) > 1) {
      cors <- list()
      for (a in 1:(length(sds) - 1)) for (b in (a + 1):length(sds))
        cors[[paste(names(sds)[a], names(sds)[b], sep = ":")]] <- cor[a, b]
      res$cor <- cors
    }
    res
  })
}

ranef5 <- function(m, grp) {
  r <- ranef(m)$cond[[grp]][1:5, , drop = FALSE]
  setNames(lapply(seq_len(nrow(r)), function(i) as.list(r[i, , drop = FALSE])), rownames(r))
}

case <- function(m, d, grp, resp, r_call, formula_py, family, link, profile = TRUE, exact = FALSE, note = NULL) {
  V <- vcov(m, full = TRUE)
  se_full <- sqrt(diag(V))
  dname <- grep("^d~", colnames(V), value = TRUE)
  thnames <- grep("^theta_", colnames(V), value = TRUE)
  ll <- logLik(m)
  s <- sigma(m)
  res <- list(r_call = r_call, formula = formula_py, family = family, link = link,
              converged = m$fit$convergence == 0 && isTRUE(m$sdr$pdHess),
              fixef = as.list(fixef(m)$cond), se = as.list(sqrt(diag(vcov(m)$cond))),
              varcorr = varcorr(m), sigma = s)
  if (family == "Gamma") res$shape <- 1 / s^2 else res$theta <- s
  res$dispersion_internal <- list(
    name = dname, estimate = unname(m$obj$env$parList()$betad),
    se = unname(se_full[dname]),
    scale = if (family == "Gamma") "log(shape) (sigma(m) = exp(-betad/2))" else "log(theta) (sigma(m) = exp(betad))")
  res$internal <- list(estimate = as.list(setNames(m$fit$par, colnames(V))),
                       se_hessian = as.list(se_full))
  res$loglik <- as.numeric(ll); res$df <- attr(ll, "df"); res$AIC <- AIC(m); res$nobs <- nobs(m)
  if (profile) {
    # one confint() call per parameter, so that a failure (e.g. an SD on the boundary) loses only that parameter
    sdnames <- thnames[seq_len(sum(sapply(VarCorr(m)$cond, function(v) length(attr(v, "stddev")))))]
    vc <- VarCorr(m)$cond
    sdlab <- unlist(lapply(names(vc), function(gname) paste(gname, names(attr(vc[[gname]], "stddev")), sep = ":")))
    parm <- c(dname, sdnames)
    ours <- c(if (family == "Gamma") "shape" else "theta", paste0("sd:", sdlab))
    pc <- list(call = "confint(m, method = \"profile\", parm = <name>), one call per name; 95%",
               internal = list(), ours = list(), errors = list(), seconds = list())
    for (k in seq_along(parm)) {
      t0 <- Sys.time()
      ci <- tryCatch(confint(m, method = "profile", parm = parm[k]), error = function(e) e)
      pc$seconds[[parm[k]]] <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
      if (inherits(ci, "error")) { pc$errors[[parm[k]]] <- conditionMessage(ci); next }
      pc$internal[[parm[k]]] <- list(lower = unname(ci[1, 1]), upper = unname(ci[1, 2]))
      pc$ours[[ours[k]]] <- list(lower = exp(unname(ci[1, 1])), upper = exp(unname(ci[1, 2])))
    }
    pc$note <- paste("profile intervals of glmmTMB's internal parameters (\"d~(Intercept)\" = log theta or log shape,",
                     "\"theta_...\" = log SD); \"ours\" = exp() of them: theta or shape, and the SDs")
    res$profile_ci <- pc
  }
  res$ranef_first5 <- ranef5(m, grp)
  nd <- head(d, 5)
  res$newdata <- nd
  res$predict_call <- "predict(m, newdata = head(data, 5), se.fit = TRUE, re.form = NA | NULL, type = \"link\" | \"response\")"
  res$predictions <- predictions(m, nd)
  if (exact) {
    res$loglik_integrated <- loglik_integrated(m, family, link, d, resp, grp)
    res$loglik_integrated_note <- paste("exact marginal log-likelihood at the glmmTMB estimates: integrate() per group of the",
                                        "conditional likelihood times N(b; 0, sd^2); loglik is glmmTMB's Laplace approximation")
  }
  if (length(VarCorr(m)$cond[[1]]) == 1) res$parametrisation_check <- joint_check(m, family, link, d, resp, grp)
  if (!is.null(note)) res$note <- note
  res
}

out <- list(produced_by = paste0("bayesglmm/datasets/reference/dispersion.R (R ", getRversion(), ", glmmTMB ",
                                 packageVersion("glmmTMB"), ", TMB ", packageVersion("TMB"), ", lme4 ",
                                 packageVersion("lme4"), ")"),
            note = paste(
              "Verified in glmmTMB 1.1.5 (?sigma.glmmTMB, ?family_glmmTMB, glmmTMB:::sigma.glmmTMB, nbinom2()$variance, and numerically:",
              "each case's parametrisation_check equals TMB's joint negative log-likelihood at the optimum with the sum of",
              "R's densities: dnbinom(size = theta, mu); beta-binomial with p ~ Beta(mu phi, (1 - mu) phi); dgamma(shape, scale = mu/shape)).",
              "nbinom2: sigma(m) = exp(betad) = theta, Var = mu + mu^2/theta (nbinom2()$variance is mu * (1 + mu/theta)).",
              "betabinomial: sigma(m) = exp(betad) = phi, the precision of the Beta (Ferrari & Cribari-Neto, as family beta):",
              "Var = n mu (1 - mu) (1 + (n - 1)/(phi + 1)), i.e. rho = 1/(1 + phi): our theta = phi.",
              "Gamma: internal betad = log(shape), sigma(m) = exp(-betad/2) = 1/sqrt(shape): our shape = 1/sigma(m)^2",
              "(?family_glmmTMB says 'phi is the shape parameter. V=mu*phi' for Gamma: the variance there is a slip,",
              "the numerical check confirms dgamma(shape = exp(betad), scale = mu/shape), i.e. V = mu^2/shape).",
              "?family_glmmTMB: betabinomial V = mu (1 - mu) n (phi + n)/(phi + 1) (Morris 1997), the same as above.",
              "The internal dispersion parameter is named \"d~(Intercept)\" in vcov(m, full = TRUE) and confint;",
              "the random-effect parameters \"theta_1|<group>.k\" (log SDs first, then the correlation parameters)."))

## ---- cases ----
S <- csv("salamander_counts", c("site", "mined", "spp"))
m <- glmmTMB(count ~ spp + mined + (1 | site), family = nbinom2, data = S)
out$salamanders_nbinom2 <- case(m, S, "site", "count",
  "glmmTMB(count ~ spp + mined + (1 | site), family = nbinom2, data = Salamanders)",
  "count ~ spp + mined + (1 | site)", "nbinom2", "log", exact = TRUE,
  note = "Salamanders re-levelled alphabetically (mined: no, yes; spp: DES-L, DF, DM, EC-A, EC-L, GP, PR); glmmTMB's own levels differ, so the coefficients differ from its vignette's but the fit (loglik, theta, SD) is the same")

mnb <- glmer.nb(count ~ spp + mined + (1 | site), data = S)
out$salamanders_glmer_nb <- list(
  r_call = "lme4::glmer.nb(count ~ spp + mined + (1 | site), data = Salamanders)",
  formula = "count ~ spp + mined + (1 | site)", family = "negativebinomial", link = "log",
  fixef = as.list(fixef(mnb)), se = as.list(sqrt(diag(as.matrix(vcov(mnb))))),
  theta = getME(mnb, "glmer.nb.theta"),
  sd = list(site = list(`(Intercept)` = unname(attr(VarCorr(mnb)$site, "stddev")))),
  loglik = as.numeric(logLik(mnb)), df = attr(logLik(mnb), "df"), AIC = AIC(mnb), nobs = nobs(mnb),
  note = paste("Same model as salamanders_nbinom2 by lme4: glmer.nb alternates theta (glm.nb-style) and glmer fits;",
               "lme4's Laplace uses the Fisher-scoring (expected) weights of the PIRLS, glmmTMB the exact Hessian of the",
               "joint log-likelihood, so estimates and loglik differ slightly (NB2 with log link is not canonical)."))

epil <- csv("epil", c("trt", "subject"))
m <- glmmTMB(y ~ lbase * trt + lage + V4 + (1 | subject), family = nbinom2, data = epil)
out$epil_nbinom2 <- case(m, epil, "subject", "y",
  "glmmTMB(y ~ lbase * trt + lage + V4 + (1 | subject), family = nbinom2, data = epil)",
  "y ~ lbase * trt + lage + V4 + (1 | subject)", "nbinom2", "log")

nbo <- csv("nb_offset_sim", "g")
m <- glmmTMB(y ~ x + offset(log(t)) + (1 | g), family = nbinom2, data = nbo)
out$nb_offset_nbinom2 <- case(m, nbo, "g", "y",
  "glmmTMB(y ~ x + offset(log(t)) + (1 | g), family = nbinom2, data = nb_offset_sim)",
  "y ~ x + offset(log(t)) + (1 | g)", "nbinom2", "log",
  note = "simulated with log mu = log(t) + 0.5 + 0.4 x + b_g, SD 0.6, theta 1.7 (seed 20240612)")

cbpp <- csv("cbpp", c("herd", "period"))
m <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cbpp)
out$cbpp_betabinomial <- case(m, cbpp, "herd", "incidence",
  "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cbpp)",
  "cbind(incidence, size - incidence) ~ period + (1 | herd)", "betabinomial", "logit", exact = TRUE,
  note = paste("theta = sigma(m) = phi: Var = n mu (1 - mu) (1 + (n - 1) rho), rho = 1/(1 + theta).",
               "The herd SD is on the boundary (about 1e-4; its Hessian SE is huge and its profile fails): the beta-binomial",
               "overdispersion absorbs the herd variation; loglik equals that of the fit without (1 | herd),",
               "loglik_without_random_effect"))

out$cbpp_betabinomial$loglik_without_random_effect <- as.numeric(logLik(
  glmmTMB(cbind(incidence, size - incidence) ~ period, family = betabinomial, data = cbpp)))

gs <- csv("gamma_sim", c("g", "trt"))
m <- glmmTMB(y ~ x + trt + (1 | g), family = Gamma(link = "log"), data = gs)
out$gamma_log <- case(m, gs, "g", "y",
  "glmmTMB(y ~ x + trt + (1 | g), family = Gamma(link = \"log\"), data = gamma_sim)",
  "y ~ x + trt + (1 | g)", "Gamma", "log", exact = TRUE,
  note = "simulated with log mu = 1 + 0.3 x - 0.4 (trt == b) + b_g, SD 0.5, shape 2.5 (seed 20240611); shape = 1/sigma(m)^2")

# glmmTMB's default start (beta = 0) is mu = 1/0 with the inverse link ("negative log-likelihood is NaN at starting
# parameter values"): start the intercept at 1/mean(y)
mi <- tryCatch(glmmTMB(y ~ x + trt + (1 | g), family = Gamma(link = "inverse"), data = gs,
                       start = list(beta = c(1 / mean(gs$y), 0, 0))), error = function(e) e)
ok <- !inherits(mi, "error") && mi$fit$convergence == 0 && isTRUE(mi$sdr$pdHess) &&
  all(predict(mi, type = "link") > 0)
if (ok) {
  out$gamma_inverse <- case(mi, gs, "g", "y",
    "glmmTMB(y ~ x + trt + (1 | g), family = Gamma(link = \"inverse\"), data = gamma_sim, start = list(beta = c(1 / mean(gamma_sim$y), 0, 0)))",
    "y ~ x + trt + (1 | g)", "Gamma", "inverse",
    note = paste("without start = glmmTMB fails (NaN at the default start beta = 0);",
                 "the data were simulated with a log link: this fit checks the inverse link, not a true model"))
} else {
  out$gamma_inverse_note <- paste("glmmTMB(y ~ x + trt + (1 | g), family = Gamma(link = \"inverse\")) did not converge cleanly:",
                                  if (inherits(mi, "error")) conditionMessage(mi) else "convergence / pdHess / positive mu check failed")
}

m <- glmmTMB(count ~ mined + cover + (1 + cover | site), family = nbinom2, data = S)
out$salamanders_nbinom2_slope <- case(m, S, "site", "count",
  "glmmTMB(count ~ mined + cover + (1 + cover | site), family = nbinom2, data = Salamanders)",
  "count ~ mined + cover + (1 + cover | site)", "nbinom2", "log",
  note = paste("SINGULAR fit: the correlation is -1 and glmmTMB warns of a non-positive-definite Hessian (converged = false);",
               "so are (1 + DOY | site), (1 + DOP | site), (1 + Wtemp | site) and (1 + cover | site) with spp, and epil's",
               "(1 + V4 | subject): the real data hold no slope variance. Estimates and loglik are a boundary optimum,",
               "the SEs are not to be trusted; see nb_slope_nbinom2 for a non-degenerate correlated block."))

# A correlated block with a dispersion that is not degenerate (not in the brief: the Salamanders slope fit is singular).
# 30 groups of 8..12 rows; log mu = 0.8 + 0.5 x + b0 + b1 x, SD(b0) 0.5, SD(b1) 0.3, cor 0.4; y ~ NB2(mu, theta = 2.5)
set.seed(20240613)
sizes <- sample(8:12, 30, replace = TRUE)
g <- rep(sprintf("c%02d", 1:30), sizes)
n <- length(g)
x <- rnorm(n)
L <- t(chol(matrix(c(0.25, 0.4 * 0.5 * 0.3, 0.4 * 0.5 * 0.3, 0.09), 2)))
bb <- t(L %*% matrix(rnorm(60), 2))
gi <- match(g, sprintf("c%02d", 1:30))
y <- rnbinom(n, size = 2.5, mu = exp(0.8 + 0.5 * x + bb[gi, 1] + bb[gi, 2] * x))
write_data(data.frame(g = g, x = x, y = y), "nb_slope_sim")
nbs <- csv("nb_slope_sim", "g")
m <- glmmTMB(y ~ x + (1 + x | g), family = nbinom2, data = nbs)
out$nb_slope_nbinom2 <- case(m, nbs, "g", "y",
  "glmmTMB(y ~ x + (1 + x | g), family = nbinom2, data = nb_slope_sim)",
  "y ~ x + (1 + x | g)", "nbinom2", "log",
  note = "simulated with log mu = 0.8 + 0.5 x + b0 + b1 x, SDs 0.5 and 0.3, cor 0.4, theta 2.5 (seed 20240613)")

# glmmTMB's profile of the beta-binomial's theta on cbpp stops at 26.4 (its herd SD, a log SD, stays near the boundary
# along the profile); the constrained maximum with theta fixed (map = list(betad = NA)) lets the SD grow, and reaches
# logLik - qchisq(0.95, 1)/2 only near theta = 60.2: the fixed-theta log-likelihoods at both, the profile's reference.
cb <- csv("cbpp", c("herd", "period"))
out$cbpp_betabinomial$fixed_theta <- lapply(c(26.4, 60.2), function(th) {
  mf <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial, data = cb,
                map = list(betad = factor(NA)), start = list(betad = log(th)))
  list(theta = th, loglik = as.numeric(logLik(mf)), sd = unname(attr(VarCorr(mf)$cond$herd, "stddev")),
       r_call = sprintf(paste("glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = betabinomial,",
                              "data = cbpp, map = list(betad = factor(NA)), start = list(betad = log(%g)))"), th))
})

# The GLM without random effects (complete pooling: bg.pooling, bg.naive_vs_clustered): glmmTMB's ML in (beta, log theta)
# with the full Hessian's SEs, and MASS::glm.nb's (its vcov holds theta fixed).
S2 <- csv("salamander_counts", c("site", "mined", "spp"))
g1 <- glmmTMB(count ~ spp + mined, family = nbinom2, data = S2)
g2 <- MASS::glm.nb(count ~ spp + mined, data = S2)
out$salamanders_glm_nbinom2 <- list(
  r_call = "glmmTMB(count ~ spp + mined, family = nbinom2, data = Salamanders)", formula = "count ~ spp + mined",
  family = "nbinom2", link = "log", fixef = as.list(fixef(g1)$cond), se = as.list(sqrt(diag(vcov(g1)$cond))),
  theta = sigma(g1), loglik = as.numeric(logLik(g1)),
  glm_nb = list(r_call = "MASS::glm.nb(count ~ spp + mined, data = Salamanders)", fixef = as.list(coef(g2)),
                se = as.list(sqrt(diag(vcov(g2)))), theta = g2$theta,
                note = "glm.nb's vcov holds theta fixed: SEs slightly below glmmTMB's"))

# PQL and GEE where they are defined for these families: the Gamma (its 1/shape a quasi-likelihood scale).
suppressMessages({library(MASS); library(nlme); library(geepack)})
pq <- glmmPQL(y ~ x + trt, random = ~ 1 | g, family = Gamma(link = "log"), data = gs, verbose = FALSE)
vc <- VarCorr(pq)
out$gamma_log_pql <- list(
  r_call = "MASS::glmmPQL(y ~ x + trt, random = ~ 1 | g, family = Gamma(link = \"log\"), data = gamma_sim)",
  formula = "y ~ x + trt + (1 | g)", family = "gamma", link = "log",
  fixef = as.list(fixef(pq)), se = as.list(sqrt(diag(vcov(pq)))),
  sd = as.numeric(vc["(Intercept)", "StdDev"]), residual_sd = as.numeric(vc["Residual", "StdDev"]),
  shape = 1 / as.numeric(vc["Residual", "StdDev"])^2,
  note = "glmmPQL's residual SD is sqrt(1/shape): the working model's dispersion")
gso <- gs[order(gs$g), ]
ge <- geeglm(y ~ x + trt, id = g, family = Gamma(link = "log"), corstr = "exchangeable", data = gso)
out$gamma_log_gee <- list(
  r_call = "geepack::geeglm(y ~ x + trt, id = g, family = Gamma(link = \"log\"), corstr = \"exchangeable\", data = gamma_sim[order(gamma_sim$g), ])",
  formula = "y ~ x + trt + (1 | g)", family = "gamma", link = "log",
  fixef = as.list(coef(ge)), se = as.list(summary(ge)$coefficients[, "Std.err"]),
  alpha = as.numeric(summary(ge)$corr[1, "Estimate"]), packages = paste("geepack", packageVersion("geepack")))

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(here, "reference", "dispersion.json"))
cat("done\n")
