/** The part of ml-random-forest (mljs, no bundled types) that forest-fit.ts uses. */
declare module 'ml-random-forest' {
  export interface RandomForestRegressionOptions {
    nEstimators?: number
    maxFeatures?: number
    replacement?: boolean
    useSampleBagging?: boolean
    noOOB?: boolean
    seed?: number
    selectionMethod?: 'mean' | 'median'
    treeOptions?: { maxDepth?: number; minNumSamples?: number }
  }
  export class RandomForestRegression {
    constructor(options?: RandomForestRegressionOptions)
    train(features: number[][], values: number[]): void
    predict(features: number[][]): number[]
    toJSON(): unknown
  }
}
