import sqlite3,json,sys,os,numpy as np
KEY=os.environ.get('KEY','conv')
db=sqlite3.connect(sys.argv[1]); cid=sys.argv[2] if len(sys.argv)>2 else None
if not cid: cid=db.execute("select id from campaigns where kind='layers' order by started_at desc limit 1").fetchone()[0]
for side in ('edge','device'):
  rows=db.execute("select spec_json, features_json, run_ms, held_out from measurements where campaign_id=? and side=? and regression_key=?",(cid,side,KEY)).fetchall()
  X=np.array([json.loads(r[1]) for r in rows]); y=np.array([r[2] for r in rows]); h=np.array([r[3] for r in rows])
  specs=[json.loads(r[0]) for r in rows]
  A=np.c_[X,np.ones(len(y))]; W=1/y
  tr=h==0
  coef,*_=np.linalg.lstsq(A[tr]*W[tr,None], y[tr]*W[tr], rcond=None)
  pred=A@coef; err=(pred-y)/y
  print(side,'train mape %.1f held %.1f'%(100*np.mean(abs(err[tr])),100*np.mean(abs(err[~tr]))))
  idx=np.argsort(-abs(err))[:12]
  for i in idx: s=specs[i]; macs=X[i][-1]; print('  ',json.dumps(s), 'y %.4f pred %.4f err %+.0f%% held %d  ns/mac %.3f'%(y[i],pred[i],100*err[i],h[i], y[i]*1e6/macs))
