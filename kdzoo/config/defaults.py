"""Every kdzoo option, with the value of the CIFAR-100 protocol (CRD/RepDistiller) as default.

Config files only override what differs from here, and an override of a key that is not defined
here is an error. Method-specific options live under ``DISTILLER.<METHOD>``.
"""

from .config import CfgNode as CN

_C = CN()
# Bumped when a key is renamed, so old files can be told apart (config.CfgNode._RENAMED_KEYS
# turns each old key into an error naming the new one). 2: the bank options of CRD and WCoRD
# (DISTILLER.{CRD,WCORD}.{FEAT_DIM,NUM_NEGATIVES,MODE,MEMORY,MEMORY_MOMENTUM}) moved to
# DISTILLER.MEMORY_BANK.
_C.VERSION = 2

# -------------------------------------------------------------------------------------------------
# Models
# -------------------------------------------------------------------------------------------------
_C.MODEL = CN()
# "cpu" or "cuda"; each process uses one device (cuda:<local rank> under DDP).
_C.MODEL.DEVICE = "cpu"
_C.MODEL.NUM_CLASSES = 100
# With several processes, normalise training batches over the global batch: every BatchNorm but
# the teacher's becomes torch's SyncBatchNorm on GPUs, kdzoo's GlobalBatchNorm on CPUs (Gloo).
_C.MODEL.SYNC_BN = False
# Keep models and images in channels_last (NHWC) memory format: faster convolutions on GPUs with
# tensor cores and on CPUs (oneDNN). On by default: on the 2-core CPU of BENCHMARKS.md it sped up
# the training step of every CIFAR architecture measured, 1.05x (vgg8) to 1.7x (MobileNetV2), and
# CoCoRD's by 1.36x. The numbers are the same up to float rounding; False keeps NCHW.
_C.MODEL.CHANNELS_LAST = True

# The network being trained. The `vanilla` distiller trains it alone: that is how teachers are made.
_C.MODEL.STUDENT = CN()
# A name in BACKBONE_REGISTRY (RepDistiller's names for CIFAR, torchvision's for ImageNet).
_C.MODEL.STUDENT.NAME = "resnet20"
# Optional initial weights: a file (RepDistiller {'model': ...}, plain state_dict or kdzoo
# checkpoint) or a torchvision weight name such as "IMAGENET1K_V1".
_C.MODEL.STUDENT.WEIGHTS = ""

# The frozen network whose knowledge is distilled; always in eval mode, never trained.
_C.MODEL.TEACHER = CN()
_C.MODEL.TEACHER.NAME = ""
# Weights of the teacher, in any format MODEL.STUDENT.WEIGHTS takes. Required by every distiller
# that has a teacher.
_C.MODEL.TEACHER.WEIGHTS = ""

# -------------------------------------------------------------------------------------------------
# Distillers: DISTILLER.NAME picks a method by its registered name; its options live under its own
# node.
# DISTILLER.MEMORY_BANK holds the options of the memory bank that CRD and WCoRD share.
# -------------------------------------------------------------------------------------------------
_C.DISTILLER = CN()
_C.DISTILLER.NAME = "vanilla"

# Hinton et al.'s KD: CE_WEIGHT * CE(student, label) + KD_WEIGHT * T^2 * KL(p_t^T || p_s^T).
_C.DISTILLER.KD = CN()
_C.DISTILLER.KD.TEMPERATURE = 4.0
_C.DISTILLER.KD.CE_WEIGHT = 0.1
_C.DISTILLER.KD.KD_WEIGHT = 0.9

# What CRD and WCoRD share (kdzoo/distillers/contrastive_bank.py): student and teacher embeddings
# contrasted with rows of a memory bank of the whole training set, CRD's protocol.
_C.DISTILLER.MEMORY_BANK = CN()
# Size of the embeddings that are contrasted (Linear(d, FEAT_DIM) + L2 norm on each side).
_C.DISTILLER.MEMORY_BANK.FEAT_DIM = 128
# Negatives per anchor, K.
_C.DISTILLER.MEMORY_BANK.NUM_NEGATIVES = 16384
# Which sample is the positive: "exact": the anchor itself; "relax": a random sample of the
# anchor's class (possibly the anchor). In both, as in the reference, the K negatives are distinct
# samples of the other classes (drawn with replacement only for a class that leaves fewer than K).
_C.DISTILLER.MEMORY_BANK.MODE = "exact"
# True: draw every anchor's negatives with replacement (~15% of draws repeat on CIFAR-100). The
# distinct draw ranks random keys over [global batch, N] every step: 40 ms, 3.5% of a CIFAR-100
# CRD step on the 2-core CPU of BENCHMARKS.md, but 1.1 s per 64 anchors at ImageNet's N, where a
# repeat is rare (~0.6% of draws): the ImageNet CRD config sets it True.
_C.DISTILLER.MEMORY_BANK.NEGATIVES_WITH_REPLACEMENT = False
# The bank of every training sample's two embeddings: a name in MEMORY_REGISTRY, built as
# NAME(num_samples=N, dim=FEAT_DIM, momentum=MOMENTUM) (a user's memory registered under another
# name must offer momentum_bank's interface).
_C.DISTILLER.MEMORY_BANK.NAME = "momentum_bank"
# Bank rows of the batch: row = normalize(m * row + (1 - m) * new).
_C.DISTILLER.MEMORY_BANK.MOMENTUM = 0.5

# CRD (Tian et al., ICLR 2020), as RepDistiller runs it on CIFAR-100. KD_WEIGHT > 0 gives CRD+KD
# (CE 1, KD 1, CRD 0.8), with DISTILLER.KD.TEMPERATURE. Embeddings, bank and negatives are
# DISTILLER.MEMORY_BANK's.
_C.DISTILLER.CRD = CN()
_C.DISTILLER.CRD.TEMPERATURE = 0.07
# 0: Z is estimated on the first batch and frozen (CRD). > 0: Z is an EMA with this momentum.
_C.DISTILLER.CRD.Z_MOMENTUM = 0.0
# Added inside the NCE logarithms.
_C.DISTILLER.CRD.EPS = 1e-7
_C.DISTILLER.CRD.CE_WEIGHT = 1.0
_C.DISTILLER.CRD.CRD_WEIGHT = 0.8
_C.DISTILLER.CRD.KD_WEIGHT = 0.0

# CoCoRD (the paper: Contrastive Consistent Representation Distillation), CIFAR-100 settings.
# KD_WEIGHT > 0 gives CoCoRD+KD (the paper gives no KD weight; 1 follows CRD+KD).
_C.DISTILLER.COCORD = CN()
# Projection heads f_s, f_t, f'_s: Linear(d, PROJ_HIDDEN) -> BN -> ReLU -> Linear(., PROJ_DIM).
_C.DISTILLER.COCORD.PROJ_DIM = 2048
_C.DISTILLER.COCORD.PROJ_HIDDEN = 2048
# Predictor h_s: Linear(PROJ_DIM, PRED_HIDDEN) -> BN -> ReLU -> Linear(., PROJ_DIM).
_C.DISTILLER.COCORD.PRED_HIDDEN = 512
# The teacher dictionary: a name in MEMORY_REGISTRY, built as DICTIONARY(size=QUEUE_SIZE,
# dim=PROJ_DIM); its `keys` [QUEUE_SIZE, PROJ_DIM] are the negatives of L_ctr.
_C.DISTILLER.COCORD.DICTIONARY = "key_queue"
# N, the size of the teacher dictionary (65536 on ImageNet). Must be >= SOLVER.IMS_PER_BATCH.
_C.DISTILLER.COCORD.QUEUE_SIZE = 2048
# tau of InfoNCE (0.07 on ImageNet).
_C.DISTILLER.COCORD.TEMPERATURE = 0.1
# m_c, Eq. 3 (used when teacher and student features have the same size; else f_t is frozen).
_C.DISTILLER.COCORD.TEACHER_HEAD_MOMENTUM = 0.999
# m_r, Eq. 4: the slow-moving student and its head.
_C.DISTILLER.COCORD.SLOW_MOMENTUM = 0.9
# Eq. 8 weights.
_C.DISTILLER.COCORD.CTR_WEIGHT = 1.0
_C.DISTILLER.COCORD.PRED_WEIGHT = 4.0
_C.DISTILLER.COCORD.CLS_WEIGHT = 1.0
_C.DISTILLER.COCORD.KD_WEIGHT = 0.0
# L_pred in both directions (Eq. 6 + 7); False: Eq. 6 only (ImageNet).
_C.DISTILLER.COCORD.SYMMETRIC_PRED = True
# Ablations: the encoder whose keys fill the dictionary ("teacher", "slow_student") and the one
# whose keys are the prediction targets ("slow_student", "teacher", "none": no L_pred).
_C.DISTILLER.COCORD.DICTIONARY_ENCODER = "teacher"
_C.DISTILLER.COCORD.PREDICTION_TARGET = "slow_student"

# WCoRD (Chen et al., CVPR 2021): CE_WEIGHT CE + GCKT_WEIGHT GCKT + LCKT_WEIGHT LCKT, plus
# KD_WEIGHT KD with DISTILLER.KD.TEMPERATURE for WCoRD+KD. Only the paper's abstract was read: every
# option marked *unverified* is our choice where the paper fixes one we could not check. Protocol
# (K, T, bank) as CRD: embeddings, bank and GCKT's negatives are DISTILLER.MEMORY_BANK's.
_C.DISTILLER.WCORD = CN()
# GCKT objective on the critic scores g: "infonce" (-log softmax of g / TEMPERATURE at the
# positive) or "kantorovich" (mean negative g - positive g). *Unverified*.
_C.DISTILLER.WCORD.OBJECTIVE = "infonce"
# T of the "infonce" objective (CRD's).
_C.DISTILLER.WCORD.TEMPERATURE = 0.07
# The critic g(t, s): "inner" (<t, s> of the normalised embeddings: CRD's score) or "mlp".
# *Unverified*.
_C.DISTILLER.WCORD.CRITIC = "inner"
# MLP critic only: its input ("product": t * s, "concat": [t; s]) and hidden width. *Unverified*.
_C.DISTILLER.WCORD.CRITIC_INPUT = "product"
_C.DISTILLER.WCORD.CRITIC_HIDDEN = 128
# MLP critic only: how it is held 1-Lipschitz, "spectral_norm" or "gradient_penalty" (two-sided,
# WGAN-GP, weighted GP_WEIGHT). *Unverified*.
_C.DISTILLER.WCORD.LIPSCHITZ = "spectral_norm"
_C.DISTILLER.WCORD.GP_WEIGHT = 10.0
# Spectral norm: 0 divides each critic weight by a certified upper bound of its largest singular
# value (its norm stays in [0.999, 1]); n > 0 by torch's estimate after n power iterations per step
# (SN-GAN: 1), which lets the norm drift above 1 while the weights move. *Unverified*.
_C.DISTILLER.WCORD.CRITIC_POWER_ITERS = 0
# GCKT in both directions (student vs teacher bank + teacher vs student bank, as CRD) or the
# student's only. *Unverified*.
_C.DISTILLER.WCORD.SYMMETRIC = True
# LCKT: entropic OT between the batch's teacher and student embeddings; ground cost "cosine"
# (1 - cos) or "l2" (squared distance), Sinkhorn epsilon and iterations. *Unverified*.
_C.DISTILLER.WCORD.OT_COST = "cosine"
_C.DISTILLER.WCORD.SINKHORN_EPSILON = 0.05
_C.DISTILLER.WCORD.SINKHORN_ITERS = 50
# Loss weights: CE 1; lambda1 (GCKT) 0.8, CRD's weight, and lambda2 (LCKT) are *unverified*;
# WCoRD+KD configs set KD_WEIGHT 1 (*unverified*, as CRD+KD).
_C.DISTILLER.WCORD.CE_WEIGHT = 1.0
_C.DISTILLER.WCORD.GCKT_WEIGHT = 0.8
_C.DISTILLER.WCORD.LCKT_WEIGHT = 0.05
_C.DISTILLER.WCORD.KD_WEIGHT = 0.0

# RepDistiller's feature-distillation baselines (kdzoo/distillers/feature_distiller.py, one file
# per method): CE_WEIGHT * CE + WEIGHT * feature loss (+ KD_WEIGHT * KD at DISTILLER.KD.TEMPERATURE
# when KD_WEIGHT > 0). Defaults are RepDistiller's CIFAR-100 runs (commit b84f547,
# scripts/run_cifar_distill.sh: -r 1 -a 0 -b WEIGHT).
# AT (Zagoruyko & Komodakis, ICLR 2017) on the stage outputs feat[1:-1], summed over the pairs.
_C.DISTILLER.AT = CN()
_C.DISTILLER.AT.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default, which the script keeps
_C.DISTILLER.AT.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh)
_C.DISTILLER.AT.WEIGHT = 1000.0  # -b 1000 (run_cifar_distill.sh:9)
_C.DISTILLER.AT.P = 2  # exponent of the attention map, Attention(p=2) (train_student.py)
# SP (Tung & Mori, ICCV 2019) on the last stage output feat[-2].
_C.DISTILLER.SP = CN()
_C.DISTILLER.SP.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default, which the script keeps
_C.DISTILLER.SP.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh)
_C.DISTILLER.SP.WEIGHT = 3000.0  # -b 3000 (run_cifar_distill.sh:11)
# PKT (Passalis & Tefas, ECCV 2018) on the pooled penultimate vector feat[-1].
_C.DISTILLER.PKT = CN()
_C.DISTILLER.PKT.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default, which the script keeps
_C.DISTILLER.PKT.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh)
_C.DISTILLER.PKT.WEIGHT = 30000.0  # -b 30000 (run_cifar_distill.sh:19)
# RKD (Park et al., CVPR 2019) on the pooled penultimate vector feat[-1].
_C.DISTILLER.RKD = CN()
_C.DISTILLER.RKD.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default, which the script keeps
_C.DISTILLER.RKD.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh)
_C.DISTILLER.RKD.WEIGHT = 1.0  # -b 1 (run_cifar_distill.sh:17)
_C.DISTILLER.RKD.DISTANCE_WEIGHT = 25.0  # w_d inside the loss, RKDLoss(w_d=25) (RKD.py:10)
_C.DISTILLER.RKD.ANGLE_WEIGHT = 50.0  # w_a inside the loss, RKDLoss(w_a=50) (RKD.py:10)
# NST (Huang & Wang, 2017) on the stage outputs feat[1:-1], summed over the pairs.
_C.DISTILLER.NST = CN()
_C.DISTILLER.NST.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default, which the script keeps
_C.DISTILLER.NST.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh)
_C.DISTILLER.NST.WEIGHT = 50.0  # -b 50 (run_cifar_distill.sh:27)
# FitNet (Romero et al., ICLR 2015, --distill hint): the student's feat[HINT_LAYER] through a
# trained hint regressor (ConvReg: conv, BN, ReLU) against the teacher's, MSE (HintLoss).
_C.DISTILLER.FITNET = CN()
_C.DISTILLER.FITNET.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default, which the script keeps
_C.DISTILLER.FITNET.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh:7)
_C.DISTILLER.FITNET.WEIGHT = 100.0  # -b 100 (run_cifar_distill.sh:7)
_C.DISTILLER.FITNET.HINT_LAYER = 2  # feat[2] of is_feat: --hint_layer 2 (train_student.py:88)
# VID (Ahn et al., CVPR 2019) on the stage outputs feat[1:-1], each student map through a trained
# regressor (three 1x1 convs) with a trained per-channel variance (VIDLoss, VID.py).
_C.DISTILLER.VID = CN()
_C.DISTILLER.VID.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default, which the script keeps
_C.DISTILLER.VID.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh:15)
_C.DISTILLER.VID.WEIGHT = 1.0  # -b 1 (run_cifar_distill.sh:15)
_C.DISTILLER.VID.INIT_PRED_VAR = 5.0  # the variance every channel starts with (VID.py:15)
_C.DISTILLER.VID.EPS = 1e-5  # added to the softplus variance (VID.py:16)
# DKD (Zhao et al., CVPR 2022), mdistiller's defaults (engine/cfg.py, CFG.DKD); its per-pair
# CIFAR-100 betas are in configs/cifar100/dkd/.
_C.DISTILLER.DKD = CN()
_C.DISTILLER.DKD.CE_WEIGHT = 1.0  # CFG.DKD.CE_WEIGHT
_C.DISTILLER.DKD.KD_WEIGHT = 0.0  # mdistiller's DKD has no KD term besides its own
_C.DISTILLER.DKD.ALPHA = 1.0  # TCKD weight, CFG.DKD.ALPHA
_C.DISTILLER.DKD.BETA = 8.0  # NCKD weight, CFG.DKD.BETA
_C.DISTILLER.DKD.TEMPERATURE = 4.0  # CFG.DKD.T
_C.DISTILLER.DKD.WARMUP = 20  # epochs over which the DKD term ramps in, CFG.DKD.WARMUP
# OFD (Heo et al., ICCV 2019), mdistiller's defaults (engine/cfg.py, CFG.OFD), which its one
# CIFAR-100 config (resnet32x4 -> resnet8x4) keeps: the stages before their last ReLU, each student
# stage through a trained conv+BN connector, partial L2 to the teacher's map clipped at margins read
# off the teacher's BatchNorms; the teacher normalises with batch statistics (distillers/ofd.py).
_C.DISTILLER.OFD = CN()
_C.DISTILLER.OFD.CE_WEIGHT = 1.0  # CFG.OFD.LOSS.CE_WEIGHT
_C.DISTILLER.OFD.KD_WEIGHT = 0.0  # mdistiller's OFD has no KD term
_C.DISTILLER.OFD.WEIGHT = 0.001  # CFG.OFD.LOSS.FEAT_WEIGHT
_C.DISTILLER.OFD.CONNECTOR_KERNEL_SIZE = 1  # the connectors' conv, CFG.OFD.CONNECTOR.KERNEL_SIZE
# FSP (Yim et al., CVPR 2017): a pre-training phase on the FSP matrices of feat[:-1], then CE.
# RepDistiller's -b 50 multiplies a main-phase term it sets to 0, so there is no WEIGHT.
_C.DISTILLER.FSP = CN()
_C.DISTILLER.FSP.CE_WEIGHT = 1.0  # gamma (main phase): train_student.py's -r default
_C.DISTILLER.FSP.KD_WEIGHT = 0.0  # alpha (main phase): -a 0 (run_cifar_distill.sh:25)
_C.DISTILLER.FSP.INIT_EPOCHS = 30  # the pre-training phase: --init_epochs (train_student.py:47)
# AB (Heo et al., AAAI 2019): a pre-training phase of the connectors and the student's feature
# layers on the AB loss of the pre-ReLU stage outputs, then CE. RepDistiller's -b 1 multiplies a
# main-phase term it sets to 0 (helper/loops.py:171-173), so there is no WEIGHT.
_C.DISTILLER.AB = CN()
_C.DISTILLER.AB.CE_WEIGHT = 1.0  # gamma (main phase): train_student.py's -r default
_C.DISTILLER.AB.KD_WEIGHT = 0.0  # alpha (main phase): -a 0 (run_cifar_distill.sh:21)
_C.DISTILLER.AB.INIT_EPOCHS = 30  # the pre-training phase: --init_epochs (train_student.py:47)
_C.DISTILLER.AB.MARGIN = 1.0  # mu of the AB loss: ABLoss(margin=1.0) (AB.py:11)
# FT (Kim et al., NeurIPS 2018): a pre-training phase of the teacher's paraphraser on the
# reconstruction of the teacher's last stage output, then CE + WEIGHT x the factor loss between
# the student's translator and the (frozen) paraphraser's encoder.
_C.DISTILLER.FT = CN()
_C.DISTILLER.FT.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default
_C.DISTILLER.FT.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh:23)
_C.DISTILLER.FT.WEIGHT = 200.0  # beta of the factor loss: -b 200 (run_cifar_distill.sh:23)
_C.DISTILLER.FT.INIT_EPOCHS = 30  # the pre-training phase: --init_epochs (train_student.py:47)
# The pre-training phase's constant lr; 0 for RepDistiller's rule (helper/pretrain.py:21-26):
# 0.01 for resnet and wrn students, SOLVER.BASE_LR for the others.
_C.DISTILLER.FT.INIT_LR = 0.0
_C.DISTILLER.FT.RATE = 0.5  # the factor's channels over the teacher's: k (models/util.py:9, 45)
_C.DISTILLER.FT.P1 = 2.0  # factor = normalize(mean_c f^P1): FactorTransfer(p1=2) (FT.py:9)
_C.DISTILLER.FT.P2 = 1.0  # loss = mean |diff|^P2 (P2 1: absolute): FactorTransfer(p2=1)
# ReviewKD (Chen et al., CVPR 2021), mdistiller's defaults (engine/cfg.py, CFG.REVIEWKD). The
# channels and sizes of its ABF modules (CFG.REVIEWKD.IN_CHANNELS, OUT_CHANNELS, SHAPES,
# OUT_SHAPES) are read off a dummy forward of the two models, never typed in.
_C.DISTILLER.REVIEWKD = CN()
_C.DISTILLER.REVIEWKD.CE_WEIGHT = 1.0  # CFG.REVIEWKD.CE_WEIGHT
_C.DISTILLER.REVIEWKD.KD_WEIGHT = 0.0  # mdistiller's ReviewKD has no KD term
# CFG.REVIEWKD.REVIEWKD_WEIGHT; mdistiller's CIFAR-100 config uses 5, the configs here the
# authors' weight per pair (configs/cifar100/reviewkd/)
_C.DISTILLER.REVIEWKD.WEIGHT = 1.0
_C.DISTILLER.REVIEWKD.WARMUP = 20  # epochs over which the HCL term ramps in, WARMUP_EPOCHS
# Cap on the ABF modules' middle width, min(cap, the student's last channels); mdistiller writes
# 512 into its code and leaves CFG.REVIEWKD.MAX_MID_CHANNEL (512) unused.
_C.DISTILLER.REVIEWKD.MAX_MID_CHANNEL = 512
# Review the student's stages before their last ReLU (CFG.REVIEWKD.STU_PREACT); the teacher's
# always are (mdistiller compares with its preact_feats).
_C.DISTILLER.REVIEWKD.STUDENT_PREACT = False
# CC (Peng et al., ICCV 2019, --distill correlation) on feat[-1], each side through a trained
# Linear(D, FEAT_DIM) without normalisation (LinearEmbed, models/util.py:185-194).
_C.DISTILLER.CC = CN()
_C.DISTILLER.CC.CE_WEIGHT = 1.0  # gamma: train_student.py's -r default, which the script keeps
_C.DISTILLER.CC.KD_WEIGHT = 0.0  # alpha: -a 0 (run_cifar_distill.sh:13)
_C.DISTILLER.CC.WEIGHT = 0.02  # -b 0.02 (run_cifar_distill.sh:13)
_C.DISTILLER.CC.FEAT_DIM = 128  # --feat_dim 128 (train_student.py:81)
# KDSVD (Lee et al., ECCV 2018) on the stage outputs feat[1:-1], as mdistiller (commit a08d46f,
# mdistiller/distillers/KDSVD.py) computes it: the SVD of each map read as [B, C*H, W] (RepDistiller
# reads [B, H*W, C]: docs/decisions.md, "Baselines"), RBF between consecutive layers.
_C.DISTILLER.KDSVD = CN()
_C.DISTILLER.KDSVD.CE_WEIGHT = 1.0  # CFG.KDSVD.LOSS.CE_WEIGHT (mdistiller engine/cfg.py)
_C.DISTILLER.KDSVD.KD_WEIGHT = 0.0  # mdistiller's KDSVD has no KD term
_C.DISTILLER.KDSVD.WEIGHT = 1.0  # CFG.KDSVD.LOSS.FEAT_WEIGHT (mdistiller engine/cfg.py)
_C.DISTILLER.KDSVD.K = 1  # singular vectors the teacher keeps (the student k + 3): CFG.KDSVD.K

# -------------------------------------------------------------------------------------------------
# Data
# -------------------------------------------------------------------------------------------------
_C.DATASETS = CN()
# A name in DATASET_REGISTRY: "cifar100", "imagefolder", "stl10", "tinyimagenet" (both for linear
# probing), "digits" (the offline demo set), "synthetic" (random images of MODEL.NUM_CLASSES
# classes, for benchmarks).
_C.DATASETS.NAME = "cifar100"
# Folder of the data. For CIFAR-100 it may hold `cifar100.npz`; otherwise torchvision's files are
# used, downloaded there if DATASETS.DOWNLOAD (STL-10 likewise). For "imagefolder" and
# "tinyimagenet" it holds train/ and val/.
_C.DATASETS.ROOT = "datasets"
_C.DATASETS.DOWNLOAD = True
# Sizes of the "synthetic" dataset's train and test splits.
_C.DATASETS.SYNTHETIC_SIZES = (50000, 256)

_C.DATALOADER = CN()
# Worker processes that decode images (folder datasets). In-memory datasets (CIFAR, digits) are
# indexed directly and need none.
_C.DATALOADER.NUM_WORKERS = 4

_C.INPUT = CN()
# Side of the (square) training and test images. CIFAR: 32; ImageNet: 224.
_C.INPUT.SIZE = 32
# CIFAR augmentation, run batched on the training device: zero-pad, random crop back to SIZE, flip.
_C.INPUT.CROP_PADDING = 4
_C.INPUT.HFLIP = True
# Per-channel mean and std of [0, 1] RGB pixels (CIFAR-100's, as RepDistiller uses).
_C.INPUT.PIXEL_MEAN = [0.5071, 0.4867, 0.4408]
_C.INPUT.PIXEL_STD = [0.2675, 0.2565, 0.2761]

# -------------------------------------------------------------------------------------------------
# Solver
# -------------------------------------------------------------------------------------------------
_C.SOLVER = CN()
# Images per step over all processes; each process takes IMS_PER_BATCH / world_size.
_C.SOLVER.IMS_PER_BATCH = 64
# SGD with momentum (not Nesterov) on the parameters the distiller trains.
_C.SOLVER.BASE_LR = 0.05
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 5e-4
_C.SOLVER.MAX_EPOCHS = 240
# When > 0, the run stops after this many iterations whatever MAX_EPOCHS says (smoke runs).
_C.SOLVER.MAX_ITER = 0
# "multistep": lr * GAMMA at the start of each epoch in STEPS (CIFAR protocol: 150, 180, 210 are the
# last epochs at the old rate, so 151, 181, 211 counted from 1 start the new one). "cosine": cosine
# decay to 0 over the run.
_C.SOLVER.LR_SCHEDULER_NAME = "multistep"
_C.SOLVER.STEPS = (150, 180, 210)
_C.SOLVER.GAMMA = 0.1
# Linear warmup from WARMUP_FACTOR * lr over the first WARMUP_ITERS iterations (0: none).
_C.SOLVER.WARMUP_ITERS = 0
_C.SOLVER.WARMUP_FACTOR = 0.001
# Save a checkpoint every this many iterations (0: only the final one), keeping the newest
# CHECKPOINT_KEEP periodic ones (0: keep all).
_C.SOLVER.CHECKPOINT_PERIOD = 5000
_C.SOLVER.CHECKPOINT_KEEP = 2

# Mixed precision. DTYPE "bfloat16" autocasts on CPU and GPU; "float16" (GPU only) adds a
# grad scaler.
_C.SOLVER.AMP = CN()
_C.SOLVER.AMP.ENABLED = False
_C.SOLVER.AMP.DTYPE = "bfloat16"

# Clip the global L2 norm of the gradients (0: off).
_C.SOLVER.CLIP_GRAD_NORM = 0.0

# -------------------------------------------------------------------------------------------------
# Evaluation
# -------------------------------------------------------------------------------------------------
_C.TEST = CN()
# Evaluate top-1/top-5 on the test split every this many iterations; 0: at the end of every epoch.
# The final model is always evaluated.
_C.TEST.EVAL_PERIOD = 0
_C.TEST.IMS_PER_BATCH = 256
# Evaluate on the first this many test images (the same ones every time); 0: all of them. For smoke
# runs, whose final full test pass would otherwise take most of their time. The log says how many
# were used.
_C.TEST.MAX_IMAGES = 0
# Also save the checkpoint of the best test top-1 so far as model_best.pth (as RepDistiller and
# mdistiller keep their best model); resume still continues from the newest checkpoint.
_C.TEST.SAVE_BEST = False

# -------------------------------------------------------------------------------------------------
# Misc
# -------------------------------------------------------------------------------------------------
_C.OUTPUT_DIR = "./output"
# Seed of every random number generator; < 0 draws one (rank 0 draws, every rank uses it; it is
# written to the saved config.yaml).
_C.SEED = 0
# Print and write metrics every this many iterations. The loss is checked for NaN/Inf at the same
# period (and before every checkpoint), so the step itself never waits for the device.
_C.LOG_PERIOD = 20
# cudnn.benchmark: faster convolutions on fixed input sizes, at the price of exact repeatability.
_C.CUDNN_BENCHMARK = False
# CPU threads of each process (torch.set_num_threads); 0: torch's choice (one per core, or the
# cores shared out among --num-gpus CPU processes). On a CPU busy with another job, 1 can be many
# times faster than 2: idle OpenMP threads spin against the busy core.
_C.CPU_THREADS = 0
# Keep the host memory a step frees for the next step instead of handing it back to the kernel
# (glibc's malloc; kdzoo.utils.host_memory): no page faults on every step's fresh activations.
# Process-wide, applied by the training setup; False leaves the C allocator as it is.
_C.CPU_KEEP_FREED_MEMORY = True
