"""R reference numbers for the tests, read from the JSON files shipped in the package
(``bayesglmm/datasets/reference/*.json``; each method's entry carries its ``r_call`` and the
JSON its R and package versions, from shared/reference/r_reference.R). Benchmarks and case
studies read the same files through :func:`bayesglmm.datasets.reference`. The tests never need R.

The R calls, for reading the tests (data preparation as in r_reference.R):
  glmer(<formula>, data, family)                          -> GLMER_LAPLACE, nAGQ = 25 -> GLMER_AGQ25
  glmmTMB(<formula>, data, family)                        -> GLMMTMB (the tighter Laplace reference)
  MASS::glmmPQL(<fixed>, random = ~ 1 | g, family, data)  -> GLMMPQL[(name, "glmmpql")]
  ... control = nlme::lmeControl(sigma = 1)               -> GLMMPQL[(name, "glmmpql_sigma1")]
  geepack::geeglm(<fixed>, id, corstr = "exchangeable")   -> GEE_EXCH
  lmer(<formula>, data, REML = TRUE / FALSE)              -> LMER[(name, "reml" / "ml")]
  confint(<fit>, parm = "theta_", method = "profile")     -> GLMER_PROFILE, LMER_PROFILE_SLEEPSTUDY
"""

from bayesglmm.datasets import profile_reference, reference

_R = {name: reference(name) for name in ("cbpp", "bacteria", "epil", "ohio", "salamander", "milk", "sleepstudy")}


def _fit(entry, *keys):
    return {k: entry[k] for k in keys if k in entry}


CBPP_GLMER_LAPLACE = _fit(_R["cbpp"]["glmer_laplace"], "fixef", "se", "sd", "loglik")
SALAMANDER_GLMER_LAPLACE = _fit(_R["salamander"]["glmer_laplace"], "fixef", "se", "sd", "loglik")

GLMMTMB = {name: _fit(_R[name]["glmmtmb"], "fixef", "se", "sd", "loglik")
           for name in ("cbpp", "salamander", "bacteria", "epil", "ohio")}

GLMER_AGQ25 = {name: _fit(_R[name]["glmer_agq25"], "fixef", "sd", "loglik_full")
               for name in ("cbpp", "bacteria", "epil", "ohio")}

GLMMPQL = {}
for _name in ("cbpp", "bacteria", "epil", "ohio"):
    for _key in ("glmmpql", "glmmpql_sigma1"):
        _e = _R[_name][_key]
        GLMMPQL[(_name, _key)] = {"fixef": _e["fixef"], "se": _e["se"], "sd": next(iter(_e["sd"].values())),
                                  "residual": _e.get("residual")}

GEE_EXCH = {name: _fit(_R[name]["gee_exch"], "coef", "robust_se", "alpha") for name in ("bacteria", "ohio")}

LMER = {(name, method): _fit(_R[name][f"lmer_{method}"], "fixef", "se", "sd", "corr", "loglik")
        for name in ("sleepstudy", "milk") for method in ("reml", "ml")}

_PROFILES = profile_reference()
LMER_PROFILE_SLEEPSTUDY = _PROFILES[("sleepstudy", "reml")]
GLMER_PROFILE = {k: v for k, v in _PROFILES.items() if k[0] != "sleepstudy"}
