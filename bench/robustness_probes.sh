#!/usr/bin/env bash
# Issue 29 probe: bad input and interruptions tried as a user would, one line per case (exit code,
# seconds, whether a traceback was printed, the last line of stderr). Memory is limited to 8 GB
# per case (ulimit -v) so that an unbounded size fails instead of taking the machine down.
#   bash bench/robustness_probes.sh SRC OUT   (SRC: a ddpmkit src/ folder; run it for two versions)
# usage: probe.sh SRC OUTDIR   (SRC: a ddpmkit source tree's src/ folder)
SRC=$1; OUT=$2; rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT"
PY=/work/main/.venv-test/bin/python
D="env PYTHONPATH=$SRC $PY -m ddpmkit"
TINY="--model.unet.base_channels 16 --model.unet.channel_mults 1,2 --model.unet.layers_per_block 1 --model.unet.norm_groups 8 --diffusion.num_steps 60 --train.steps 4 --train.batch_size 8 --train.checkpoint_every 2 --sample.num_samples 4 --train.precision fp32"
$D train --preset digits --out run --quiet $TINY > /dev/null 2>&1
$PY -c "import numpy as np; f=open('bomb.npy','wb'); np.lib.format.write_array_header_1_0(f,{'descr':'<f4','fortran_order':False,'shape':(1000000,1000000)}); f.write(b'0'*64)"
$PY -c "print('['*100000+']'*100000)" > deep.json
$PY -c "from PIL import Image; import numpy as np; Image.fromarray(np.full((8,8),128,np.uint8)).save('img.png')"
n=0
probe() {  # probe "description" command...
  n=$((n+1)); desc=$1; shift
  start=$(date +%s.%N)
  ( ulimit -v 8000000; timeout 120 "$@" ) > out.$n 2> err.$n; rc=$?
  secs=$(python3 -c "print(f'{$(date +%s.%N)-$start:.1f}')")
  last=$(grep -v '^\s*$' err.$n | grep -v -i "warn" | tail -1 | cut -c1-150)
  tb=$(grep -c Traceback err.$n)
  printf '%s\t%s\trc=%s\t%ss\ttraceback=%s\t%s\n' "$n" "$desc" "$rc" "$secs" "$tb" "$last"
}
probe "num_steps 1e9" $D train --preset toy2d --out r1 --quiet --diffusion.num_steps 1000000000
probe "base_channels 1e5" $D train --preset digits --out r2 --quiet --train.steps 2 --model.unet.base_channels 100000
probe "toy_size 1e10" $D train --preset toy2d --out r3 --quiet --data.toy_size 10000000000
probe "npy header 1e6x1e6" $D train --out r4 --quiet --data.source array --data.path bomb.npy
probe "sample batch 1e8" $D sample run --quiet --num_samples 100000000 --batch_size 100000000 --out s1.png
probe "sample count 1e9" $D sample run --quiet --num_samples 1000000000 --out s1b.png
probe "restore num_samples 1e12" $D restore run --task deblur --image img.png --quiet --num_samples 1000000000000 --out s2.png
probe "classifier_scale nan" $D sample run --quiet --classifier_scale nan --num_samples 2 --out s3.png
probe "guidance inf" $D sample run --quiet --guidance inf --num_samples 2 --out s4.png
probe "noise_std inf" $D restore run --task deblur --image img.png --noise_std inf --quiet --out s5.png
probe "timesteps 5,5,5" $D sample run --quiet --timesteps 5,5,5 --num_samples 2 --out s6.png
probe "train.lr nan" $D train --preset toy2d --out r5 --quiet --train.lr nan
probe "deep config.json" $D train --config deep.json --out r6 --quiet
probe "sample to existing --out" bash -c "touch s7.png; $D sample run --quiet --num_samples 2 --out s7.png"
probe "resume finished run, fewer steps" $D train --resume --out run --quiet --train.steps 2
probe "SIGTERM during train (exit code)" bash -c "$D train --preset toy2d --out r7 --quiet --train.steps 5000 --train.checkpoint_every 1000 --diffusion.num_steps 60 & p=\$!; sleep 8; kill -TERM \$p; wait \$p; echo exit=\$? >&2; ls r7/checkpoints >&2"
probe "SIGKILL during png-folder, rerun" bash -c "$D sample run --quiet --format png-folder --num_samples 4000 --batch_size 4000 --sampler ddim --steps 1 --out k.png & p=\$!; while [ ! -d k.partial ] && [ ! -d k ]; do sleep 0.01; done; sleep 0.05; kill -9 \$p; wait \$p; ls -d k* >&2; $D sample run --quiet --format png-folder --num_samples 4000 --batch_size 4000 --sampler ddim --steps 1 --out k.png; echo rerun=\$? >&2"
