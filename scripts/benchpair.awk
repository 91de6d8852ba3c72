# benchpair.awk - summarise scripts/benchpair.sh: per scenario the medians
# of both builds, the median of the paired ratios new/old with their range,
# and the median ratio of broker CPU seconds. Runs without a result (a
# broker that did not come up) are left out.
function median(a, n,   i, j, t) {
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
NF < 6 || $3 == 0 || $5 == 0 { next }
{
  l = $1
  if (!(l in n)) { order[++no] = l; met[l] = $2 }
  k = ++n[l]; r[l, k] = $5 / $3; o[l, k] = $3; w[l, k] = $5
  c[l, k] = ($4 > 0) ? $6 / $4 : 1
}
END {
  printf "| scenario | metric | old | new | new/old, paired median [min-max] | broker CPU new/old |\n|---|---|---|---|---|---|\n"
  for (x = 1; x <= no; x++) {
    l = order[x]; m = n[l]; mn = 1e9; mx = 0
    delete a; delete b; delete d; delete e
    for (k = 1; k <= m; k++) {
      a[k] = r[l, k]; b[k] = c[l, k]; d[k] = o[l, k]; e[k] = w[l, k]
      if (r[l, k] < mn) mn = r[l, k]
      if (r[l, k] > mx) mx = r[l, k]
    }
    printf "| %s | %s | %.1f | %.1f | %.3f [%.2f-%.2f] (n=%d) | %.3f |\n", l, met[l], median(d, m), median(e, m), median(a, m), mn, mx, m, median(b, m)
  }
}
