/**
 * Which regressor a fitted profile predicts a layer with: `linear` (the campaign's variables), `paper`
 * (the paper's variables alone, where the campaign's form has more), `forest` (the tree ensembles);
 * a key without the chosen one uses its linear fit. No dependencies: the renderer names them too.
 */
export const REGRESSORS = ['linear', 'paper', 'forest'] as const
export type Regressor = (typeof REGRESSORS)[number]
export const REGRESSOR_TEXT: Record<Regressor, string> = {
  linear: 'linear fits',
  paper: "the paper's variables (linear)",
  forest: 'tree ensembles (ml-random-forest)'
}
