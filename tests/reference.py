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
