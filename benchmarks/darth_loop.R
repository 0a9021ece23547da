# The serial PSA loop of bench_engine.py's 4-state model, in R, in the style of the DARTH
# group's tutorials (Alarid-Escudero et al., Med Decis Making 2023;43:3-20 and 21-41): for each
# draw its (4, 4, T) transition array a_P, the trace row by row
# (m_M[t + 1, ] <- m_M[t, ] %*% a_P[, , t]) and the transition-dynamics array
# (a_A[, , t + 1] <- diag(m_M[t, ]) %*% a_P[, , t]; Krijkamp et al., Med Decis Making
# 2020;40:242-248) whose flows carry the rewards, the one-off cost on sick -> sicker among them,
# then the discounted, half-cycle corrected totals.
#
# Two variants (third argument): "array" (the default, as above) and "trace": the trace alone,
# state rewards as m_M %*% v_c, the one-off cost from each cycle's sick -> sicker flow
# (m_M[t, 2] * a_P[2, 3, t]), as the introductory tutorial computes rewards; about 2.7 times
# faster.
#
# Run by bench_engine.py (not by hand): Rscript darth_loop.R <draws.csv> <totals.csv> [variant]
# draws.csv: one row per draw (p_hs, p_sh, p_ss, hr_s, hr_ss, c_h, c_s, c_ss, c_d), with the
# model's constants in the columns n_cycles, rate, dt, event_cost, u_h, u_s, u_ss, u_d (the
# same in every row; the first row's are read); totals.csv: cost, qaly per draw. Prints the loop's elapsed seconds (reading and writing
# the files left out).

args <- commandArgs(trailingOnly = TRUE)
v <- read.csv(args[1])
variant <- if (length(args) >= 3) args[3] else "array"
n_cycles <- v$n_cycles[1]
d_r <- v$rate[1]
cycle_length <- v$dt[1]
event_cost <- v$event_cost[1]
v_u <- c(v$u_h[1], v$u_s[1], v$u_ss[1], v$u_d[1])
n_states <- 4
t_all <- 0:(n_cycles - 1)

run_psa <- function(v) {
  n_sim <- nrow(v)
  v_dw <- (1 + d_r)^(-(0:n_cycles) * cycle_length)      # discount factor of each row
  v_wcc <- c(0.5, rep(1, n_cycles - 1), 0.5)              # half-cycle correction
  r_bg <- 1e-4 * exp(0.08 * t_all / 12) / 12              # background mortality per cycle
  v_m_init <- c(1, 0, 0, 0)
  v_cost_total <- numeric(n_sim)
  v_qaly_total <- numeric(n_sim)
  for (i in seq_len(n_sim)) {
    p_h <- 1 - exp(-r_bg)
    p_s <- 1 - exp(-r_bg * v$hr_s[i])
    p_x <- 1 - exp(-r_bg * v$hr_ss[i])
    a_P <- array(0, dim = c(n_states, n_states, n_cycles))
    a_P[1, 2, ] <- (1 - p_h) * v$p_hs[i]
    a_P[1, 4, ] <- p_h
    a_P[1, 1, ] <- (1 - p_h) * (1 - v$p_hs[i])
    a_P[2, 1, ] <- (1 - p_s) * v$p_sh[i]
    a_P[2, 3, ] <- (1 - p_s) * v$p_ss[i]
    a_P[2, 4, ] <- p_s
    a_P[2, 2, ] <- (1 - p_s) * (1 - v$p_sh[i] - v$p_ss[i])
    a_P[3, 4, ] <- p_x
    a_P[3, 3, ] <- 1 - p_x
    a_P[4, 4, ] <- 1
    m_M <- matrix(0, nrow = n_cycles + 1, ncol = n_states)
    m_M[1, ] <- v_m_init
    v_c <- c(v$c_h[i], v$c_s[i], v$c_ss[i], v$c_d[i])
    if (variant == "trace") {
      # the trace alone; the one-off cost from the sick -> sicker flow of each cycle
      v_to_ss <- numeric(n_cycles + 1)
      for (t in 1:n_cycles) {
        m_M[t + 1, ] <- m_M[t, ] %*% a_P[, , t]
        v_to_ss[t + 1] <- m_M[t, 2] * a_P[2, 3, t]
      }
      v_cost <- as.vector(m_M %*% v_c) * v_wcc + event_cost * v_to_ss
      v_cost_total[i] <- sum(v_dw * v_cost)
      v_qaly_total[i] <- sum(v_dw * as.vector(m_M %*% v_u) * v_wcc)
      next
    }
    # the cohort trace and the transition-dynamics array (Krijkamp et al. 2020)
    a_A <- array(0, dim = c(n_states, n_states, n_cycles + 1))
    diag(a_A[, , 1]) <- v_m_init
    for (t in 1:n_cycles) {
      m_M[t + 1, ] <- m_M[t, ] %*% a_P[, , t]
      a_A[, , t + 1] <- diag(m_M[t, ]) %*% a_P[, , t]
    }
    # rewards of each flow: the destination's state reward, plus the one-off sick -> sicker cost
    m_R_c <- matrix(v_c, n_states, n_states, byrow = TRUE)
    m_R_c[2, 3] <- m_R_c[2, 3] + event_cost
    m_R_u <- matrix(v_u, n_states, n_states, byrow = TRUE)
    a_R_c <- array(m_R_c, dim = c(n_states, n_states, n_cycles + 1))
    a_R_u <- array(m_R_u, dim = c(n_states, n_states, n_cycles + 1))
    # the half-cycle correction weighs the state rewards of a row; the transition cost is not
    # weighed (as the engine does): the correction is applied to the state part only
    v_cost <- colSums(colSums(a_A * a_R_c))
    v_event <- event_cost * a_A[2, 3, ]
    v_cost <- (v_cost - v_event) * v_wcc + v_event
    v_qaly <- colSums(colSums(a_A * a_R_u)) * v_wcc
    v_cost_total[i] <- sum(v_dw * v_cost)
    v_qaly_total[i] <- sum(v_dw * v_qaly)
  }
  data.frame(cost = v_cost_total, qaly = v_qaly_total)
}

elapsed <- system.time(out <- run_psa(v))[["elapsed"]]
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("%.6f\n", elapsed))
