"""R reference numbers copied from shared/data/*.json (made by shared/reference/r_reference.R;
R 4.2.2, lme4 1.1-31). The project's tests must not need R."""

# cb <- lme4::cbpp; cb$period <- factor(cb$period)
# glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cb, family = binomial())
CBPP_GLMER_LAPLACE = {
    "fixef": {"(Intercept)": -1.3983428645, "period[2]": -0.99192497498,
              "period[3]": -1.1282162159, "period[4]": -1.5797454136},
    "se": {"(Intercept)": 0.2312140481, "period[2]": 0.30315064454,
           "period[3]": 0.32283015323, "period[4]": 0.42204915943},
    "sd": {("herd", "(Intercept)"): 0.64206992773},
    "loglik": -92.0265663895,
}

# sal$WSf <- as.integer(sal$TypeF == "W"); sal$WSm <- as.integer(sal$TypeM == "W")
# glmer(Mate ~ WSf * WSm + (1 | Female) + (1 | Male), data = sal, family = binomial())
SALAMANDER_GLMER_LAPLACE = {
    "fixef": {"(Intercept)": 1.0081887457, "WSf": -2.9041387949,
              "WSm": -0.70204773042, "WSf:WSm": 3.5883924137},
    "se": {"(Intercept)": 0.39374411502, "WSf": 0.56073022508,
           "WSm": 0.46145464358, "WSf:WSm": 0.63897489983},
    "sd": {("Female", "(Intercept)"): 1.0836678232, ("Male", "(Intercept)"): 1.0202873349},
    "loglik": -209.2766063268,
}

# Laplace ML references from glmmTMB 1.1.5 (the tighter Laplace reference; see shared/data/README.md):
#   glmmTMB(<formula>, data = <data>, family = <family>)
# with the formulas and data preparation of r_reference.R:
#   cbpp:       cbind(incidence, size - incidence) ~ period + (1 | herd), binomial()
#   salamander: Mate ~ WSf * WSm + (1 | Female) + (1 | Male), binomial()
#   bacteria:   y ~ trt + late + (1 | ID), binomial()   (y = bacteria$y == "y", late = week > 2)
#   epil:       y ~ lbase * trt + lage + V4 + (1 | subject), poisson()   (MASS::epil)
#   ohio:       resp ~ age + smoke + (1 | id), binomial()   (geepack::ohio)
# Terms renamed to bayesglmm's labels (R's "period2" is "period[2]").
GLMMTMB = {
    "cbpp": {"fixef": {"(Intercept)": -1.3985324664, "period[2]": -0.99233229286, "period[3]": -1.1286712975, "period[4]": -1.5803136871},
             "se": {"(Intercept)": 0.23247205066, "period[2]": 0.30664249497, "period[3]": 0.32663780848, "period[4]": 0.42743659668},
             "sd": {("herd", "(Intercept)"): 0.64226167223}, "loglik": -92.0262818648},
    "salamander": {"fixef": {"(Intercept)": 1.0082215536, "WSf": -2.9042134982, "WSm": -0.70204236259, "WSf:WSm": 3.5884474217},
                   "se": {"(Intercept)": 0.39377053073, "WSf": 0.56082160888, "WSm": 0.46147567896, "WSf:WSm": 0.6390804563},
                   "sd": {("Female", "(Intercept)"): 1.0836836151, ("Male", "(Intercept)"): 1.0202963023}, "loglik": -209.2765862276},
    "bacteria": {"fixef": {"(Intercept)": 2.1813656041, "trt[drug+]": 0.58401593489, "trt[placebo]": 1.3667275339, "late": -1.5985332797},
                 "se": {"(Intercept)": 0.61978404469, "trt[drug+]": 0.68910805615, "trt[placebo]": 0.67713838701, "late": 0.47601156884},
                 "sd": {("ID", "(Intercept)"): 1.2424148834}, "loglik": -96.1306868176},
    "epil": {"fixef": {"(Intercept)": 1.8328340643, "lbase": 0.88345560083, "trt[progabide]": -0.33421627538, "lage": 0.48091513419,
                       "V4": -0.15976994804, "lbase:trt[progabide]": 0.33894139079},
             "se": {"(Intercept)": 0.10528641235, "lbase": 0.13086196153, "trt[progabide]": 0.14765222682, "lage": 0.34633691805,
                    "V4": 0.054583707822, "lbase:trt[progabide]": 0.20278723681},
             "sd": {("subject", "(Intercept)"): 0.50113621075}, "loglik": -665.4744260863},
    "ohio": {"fixef": {"(Intercept)": -3.3739820311, "age": -0.1767661749, "smoke": 0.4147852014},
             "se": {"(Intercept)": 0.2749800631, "age": 0.067966883273, "smoke": 0.28703843812},
             "sd": {("id", "(Intercept)"): 2.3432028331}, "loglik": -794.9395549966},
}

# Adaptive Gauss-Hermite quadrature, 25 nodes, lme4 1.1-31:
#   glmer(<formula>, data = <data>, family = <family>, nAGQ = 25)
# loglik_full = logLik(m) + the saturated-model constant that lme4 1.1-31 leaves out at nAGQ > 1
# (shared/data/README.md), i.e. on the scale of the Laplace log-likelihood.
GLMER_AGQ25 = {
    "cbpp": {"fixef": {"(Intercept)": -1.3992237278, "period[2]": -0.99140888381, "period[3]": -1.1278095942, "period[4]": -1.5794809507},
             "sd": {("herd", "(Intercept)"): 0.64751991452}, "loglik_full": -91.98336903903558},
    "bacteria": {"fixef": {"(Intercept)": 2.2101036984, "trt[drug+]": 0.57982298381, "trt[placebo]": 1.368929367, "late": -1.6268592631},
                 "sd": {("ID", "(Intercept)"): 1.3043140814}, "loglik_full": -95.8970569371},
    "epil": {"fixef": {"(Intercept)": 1.8327644937, "lbase": 0.88340085645, "trt[progabide]": -0.3342543133, "lage": 0.48057529159,
                       "V4": -0.1597756063, "lbase:trt[progabide]": 0.33880277543},
             "sd": {("subject", "(Intercept)"): 0.50238604064}, "loglik_full": -665.4065690980599},
    "ohio": {"fixef": {"(Intercept)": -3.1015337663, "age": -0.17563123749, "smoke": 0.39857082204},
             "sd": {("id", "(Intercept)"): 2.1649168927}, "loglik_full": -797.6483554231},
}


# PQL, MASS 7.3-58.2:
#   glmmPQL(<fixed>, random = ~ 1 | <group>, family = <family>, data = <data>, verbose = FALSE)
#     -> "glmmpql" (residual dispersion estimated; its SD is the "Residual" entry)
#   glmmPQL(..., control = nlme::lmeControl(sigma = 1))  -> "glmmpql_sigma1" (Breslow-Clayton)
# Terms renamed to bayesglmm's labels; SEs are sqrt(diag(m$varFix)).
GLMMPQL = {
    ("cbpp", "glmmpql"): {"fixef": {'(Intercept)': -1.3273638846, 'period[2]': -1.0161264289, 'period[3]': -1.1499842347, 'period[4]': -1.6052170315},
        "se": {'(Intercept)': 0.23032489665, 'period[2]': 0.35500669449, 'period[3]': 0.37938160815, 'period[4]': 0.49900196347},
        "sd": 0.5563535, "residual": 1.1845275},
    ("cbpp", "glmmpql_sigma1"): {"fixef": {'(Intercept)': -1.3575083531, 'period[2]': -0.97936803877, 'period[3]': -1.1141741129, 'period[4]': -1.5633202945},
        "se": {'(Intercept)': 0.22409157808, 'period[2]': 0.3029700231, 'period[3]': 0.32322457537, 'period[4]': 0.42417342935},
        "sd": 0.6245503, "residual": None},
    ("bacteria", "glmmpql"): {"fixef": {'(Intercept)': 2.1646587059, 'trt[drug+]': 0.49302792295, 'trt[placebo]': 1.2473552617, 'late': -1.6072569804},
        "se": {'(Intercept)': 0.5282600926, 'trt[drug+]': 0.66381566501, 'trt[placebo]': 0.63818149865, 'late': 0.35506533528},
        "sd": 1.4106368, "residual": 0.7800511},
    ("bacteria", "glmmpql_sigma1"): {"fixef": {'(Intercept)': 1.8429917398, 'trt[drug+]': 0.49609287535, 'trt[placebo]': 1.137218958, 'late': -1.3895702497},
        "se": {'(Intercept)': 0.49334860357, 'trt[drug+]': 0.57497357768, 'trt[placebo]': 0.55549599079, 'late': 0.42229864545},
        "sd": 0.9405909, "residual": None},
    ("epil", "glmmpql"): {"fixef": {'(Intercept)': 1.8696677466, 'lbase': 0.88182276012, 'trt[progabide]': -0.30952532024, 'lage': 0.53354603339, 'V4': -0.15976960058, 'lbase:trt[progabide]': 0.34154252695},
        "se": {'(Intercept)': 0.10421150677, 'lbase': 0.12762941274, 'trt[progabide]': 0.1471370089, 'lage': 0.34188131171, 'V4': 0.076461173017, 'lbase:trt[progabide]': 0.20073107544},
        "sd": 0.4442704, "residual": 1.4008069},
    ("epil", "glmmpql_sigma1"): {"fixef": {'(Intercept)': 1.8537336111, 'lbase': 0.87172566166, 'trt[progabide]': -0.32756920278, 'lage': 0.47476616252, 'V4': -0.15976960058, 'lbase:trt[progabide]': 0.33209869553},
        "se": {'(Intercept)': 0.10383917414, 'lbase': 0.12916885033, 'trt[progabide]': 0.14560952889, 'lage': 0.34162515543, 'V4': 0.054583399942, 'lbase:trt[progabide]': 0.20014820326},
        "sd": 0.494406, "residual": None},
    ("ohio", "glmmpql"): {"fixef": {'(Intercept)': -2.7658364588, 'age': -0.18157564192, 'smoke': 0.32518388274},
        "se": {'(Intercept)': 0.1420836649, 'age': 0.043621145126, 'smoke': 0.2311553953},
        "sd": 2.0571746, "residual": 0.6355563},
    ("ohio", "glmmpql_sigma1"): {"fixef": {'(Intercept)': -2.1475056592, 'age': -0.13346768596, 'smoke': 0.28123511519},
        "se": {'(Intercept)': 0.11911012823, 'age': 0.058681392905, 'smoke': 0.18643116711},
        "sd": 1.336758, "residual": None},
}

# GEE, geepack 1.3.9, exchangeable working correlation, robust SEs (data sorted by cluster):
#   geeglm(y ~ trt + late, id = ID, data = bac, family = binomial(), corstr = "exchangeable")
#   geeglm(resp ~ age + smoke, id = id, data = ohio, family = binomial(), corstr = "exchangeable")
GEE_EXCH = {
    "bacteria": {"coef": {"(Intercept)": 1.7316299214, "trt[drug+]": 0.47908565353, "trt[placebo]": 1.1127261798, "late": -1.3249710317},
                 "robust_se": {"(Intercept)": 0.43718670613, "trt[drug+]": 0.51039052151, "trt[placebo]": 0.58585266703, "late": 0.36067088612},
                 "alpha": 0.13747560877},
    "ohio": {"coef": {"(Intercept)": -1.8804253005, "age": -0.11338499668, "smoke": 0.265075783},
             "robust_se": {"(Intercept)": 0.11389271456, "age": 0.043855289542, "smoke": 0.17774654987},
             "alpha": 0.35430491569},
}

# Gaussian LMMs, lme4 1.1-31:
#   lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE / FALSE)
#   lmer(protein ~ Diet + Time + (1 | Cow), data = Milk, REML = TRUE / FALSE)   (nlme::Milk)
# sd: (group, term) -> SD; corr: (group, term, term2) -> correlation; "Residual": residual SD.
LMER = {
    ("sleepstudy", "reml"): {"fixef": {"(Intercept)": 251.4051048485, "Days": 10.4672859596},
                             "se": {"(Intercept)": 6.824596695, "Days": 1.5457896439},
                             "sd": {("Subject", "(Intercept)"): 24.740657995, ("Subject", "Days"): 5.9221376589,
                                    ("Residual", "Residual"): 25.5917957217},
                             "corr": {("Subject", "(Intercept)", "Days"): 0.065551238238}, "loglik": -871.81413598},
    ("sleepstudy", "ml"): {"fixef": {"(Intercept)": 251.4051048485, "Days": 10.4672859596},
                           "se": {"(Intercept)": 6.6321227422, "Days": 1.5022302138},
                           "sd": {("Subject", "(Intercept)"): 23.7797595895, ("Subject", "Days"): 5.7167985139,
                                  ("Residual", "Residual"): 25.5919070365},
                           "corr": {("Subject", "(Intercept)", "Days"): 0.081321093427}, "loglik": -875.9696722445},
    ("milk", "reml"): {"fixef": {"(Intercept)": 3.5826631486, "Diet[barley+lupins]": -0.096304694465,
                                 "Diet[lupins]": -0.20432542403, "Time": -0.0061889188388},
                       "se": {"(Intercept)": 0.038463743591, "Diet[barley+lupins]": 0.050011662435,
                              "Diet[lupins]": 0.050041016951, "Time": 0.0014760799235},
                       "sd": {("Cow", "(Intercept)"): 0.16732145274, ("Residual", "Residual"): 0.27347860294},
                       "corr": {}, "loglik": -252.969858191},
    ("milk", "ml"): {"fixef": {"(Intercept)": 3.5827048259, "Diet[barley+lupins]": -0.096343090287,
                               "Diet[lupins]": -0.20442774528, "Time": -0.0061892363893},
                     "se": {"(Intercept)": 0.03780945273, "Diet[barley+lupins]": 0.049044374342,
                            "Diet[lupins]": 0.049074225201, "Time": 0.0014753179562},
                     "sd": {("Cow", "(Intercept)"): 0.1635746151, ("Residual", "Residual"): 0.27337240875},
                     "corr": {}, "loglik": -240.0521071106},
}

# lme4's profile intervals, as printed in ?confint.merMod for the sleepstudy model:
#   fm1 <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy); confint(fm1)
#   (lme4 profiles the ML deviance, so the REML and the ML fit give the same intervals)
LMER_PROFILE_SLEEPSTUDY = {
    ("Subject", "(Intercept)"): (14.3814761, 37.7159946),
    ("Subject", "Days"): (3.8011641, 8.7533831),
    ("Residual", "Residual"): (22.8982669, 28.8579965),
}

# glmer profile intervals of the SDs (lme4 1.1-31, R 4.2, Debian bookworm; this repo's CSVs):
#   gm <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
#   confint(gm, parm = "theta_", method = "profile")                 # and with nAGQ = 25
#   confint(glmer(Mate ~ WSf * WSm + (1 | Female) + (1 | Male), salamander, binomial), parm = "theta_")
#   confint(glmer(y ~ lbase * trt + lage + V4 + (1 | subject), MASS::epil, poisson), parm = "theta_")
# lme4 interpolates its profile with splines, so its ends carry ~1e-4 relative error.
GLMER_PROFILE = {
    ("cbpp", "laplace"): {("herd", "(Intercept)"): (0.3460732033, 1.099974648)},
    ("cbpp", "agq"): {("herd", "(Intercept)"): (0.3488017427, 1.111297466)},
    ("salamander", "laplace"): {("Female", "(Intercept)"): (0.6182800245, 1.643061361),
                                ("Male", "(Intercept)"): (0.5572734471, 1.566503344)},
    ("epil", "laplace"): {("subject", "(Intercept)"): (0.4012242124, 0.634347752)},
}
