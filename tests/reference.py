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
