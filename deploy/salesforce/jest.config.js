// sfdx-lwc-jest's preset: the LWC compiler and stubs of the base components (lightning-card, lightning-badge…)
const { jestConfig } = require('@salesforce/sfdx-lwc-jest/config');

module.exports = {
    ...jestConfig,
    modulePathIgnorePatterns: ['<rootDir>/.localdevserver'],
    testMatch: ['**/__tests__/**/*.test.js'] // __tests__/data.js holds the records the tests emit
};
